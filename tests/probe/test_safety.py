# SPDX-License-Identifier: Apache-2.0
"""What keymgr probe promises besides its grades, checked from outside:

  - refused before anything is signed or sent, with a message naming the problem: a host
    that is neither loopback nor in probe.allowed_hosts, an environment probe.environments
    does not name (production included, unless named), a key set that cannot sign (no
    active key, no issuer), bad options (exit 2); the verifier sees no request at all and
    the audit log gains no probe event;
  - an endpoint that cannot be reached, or does not answer HTTP: a clear error, and no token
    ever leaves the process;
  - an endpoint that accepts a request without a token, or refuses the genuine token: the
    run stops there (exit 1), nothing more is sent;
  - every run is in the audit log (probe.run before the first request, with every token's
    jti; probe.result after), and every token the endpoint saw is one of them;
  - the real-signature tokens verify with the probed key set's key and are valid for at most
    60 s (the expired one was, the not-yet-valid one will be, the over-long one has its iat
    set back); the forgeries verify with no key of any environment;
  - the table, and the HTML report (--output), escaped.

Usage: /usr/bin/python3 test_safety.py PATH-TO-KEYMGR
"""
import base64
import json
import os
import socket
import stat
import sys
import threading
import unittest

import jwt
from jwt.algorithms import get_default_algorithms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import Verifier, closed_port, graded  # noqa: E402

ES = "development/alg-es256"
ALGS = get_default_algorithms()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def read(path):
    with open(path) as f:
        return f.read()


def claims_of(token):
    return json.loads(b64d(token.split(".")[1]))


def header_of(token):
    return json.loads(b64d(token.split(".")[0]))


def verifies_with(token, jwks_keys):
    """The kids of the keys (of the token's alg) that verify its signature."""
    h, p, s = token.split(".")
    alg = header_of(token).get("alg")
    if alg not in ALGS or alg.startswith("HS") or alg == "none":
        return []
    ok = []
    for k in jwks_keys:
        try:
            key = jwt.PyJWK(k, algorithm=alg).key
            if ALGS[alg].verify(f"{h}.{p}".encode(), key, b64d(s)):
                ok.append(k["kid"])
        except Exception:
            pass
    return ok


class NotHttp:
    """A TCP server on 127.0.0.1 that answers like an SSH server, keeping what it received."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2)
                c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                try:
                    while True:
                        data = c.recv(65536)
                        if not data:
                            break
                        self.received += data
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class Safety(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = fixture.Installation(fixture.KEYMGR)
        cls.kid = cls.inst.create(ES, "access-token", "ES256")
        cls.inst.create("production/api", "access-token", "ES256")
        # A key set without an active key, and one the configuration does not mention.
        cls.inst.run("keyset", "create", "development/alg-es384", "--alg", "ES384",
                     "--owner", "t", "--purpose", "access-token", "--no-key", ok=True)
        cls.inst.run("keyset", "create", "development/stray", "--alg", "ES256",
                     "--owner", "t", "--purpose", "access-token", ok=True)
        cls.strict = Verifier(cls.inst, ES, "strict")

    @classmethod
    def tearDownClass(cls):
        cls.strict.close()
        cls.inst.close()

    def probe_events(self, env="development"):
        return self.inst.audit(env, "probe.run") + self.inst.audit(env, "probe.result")

    def assertRefused(self, args, code, words, verifier=None, env="development",
                      config=None, isolated=False):
        """keymgr probe ARGS exits code naming words; nothing was signed or sent."""
        before = len(self.probe_events(env))
        seen = len(verifier.requests()) if verifier else 0
        p, report = self.inst.probe(*args, config=config, isolated=isolated)
        self.assertEqual(p.returncode, code, p.stderr)
        self.assertIsNone(report)
        for w in words:
            self.assertIn(w, p.stderr)
        if verifier:
            self.assertEqual(len(verifier.requests()), seen, "a request was sent")
        self.assertEqual(len(self.probe_events(env)), before, "a probe event was recorded")
        return p

    def test_hosts_outside_loopback_and_allowed_hosts(self):
        # Run without any network: were the check to break, nothing would leave the machine.
        if self.inst.isolated() is None:
            self.skipTest("no network namespace (unshare -rn); unit.probe-target checks "
                          "these hosts without running keymgr")
        for url in ("http://example.com/api", "https://10.1.2.3:8443/api",
                    "http://[2001:db8::1]/api", "http://127.0.0.1.example.com/"):
            with self.subTest(url=url):
                host = url.split("/")[2].rsplit(":", 1)[0].strip("[]") if "[" not in url \
                    else "2001:db8::1"
                self.assertRefused([ES, url], 1, [f"host '{host}'", "probe.allowed_hosts",
                                                  "nothing was sent"], isolated=True)
        for url, words in (("ftp://127.0.0.1/x", "only http:// and https://"),
                           ("http://user:secret@127.0.0.1:1/", "no user name or password"),
                           ("127.0.0.1:8080/api", "is not a URL")):
            with self.subTest(url=url):
                p = self.assertRefused([ES, url], 2, [words], isolated=True)
                self.assertNotIn("secret", p.stderr)

    def test_environment_not_marked_for_probing(self):
        v = Verifier(self.inst, "production/api", "strict")
        try:
            self.assertRefused(["production/api", v.url], 1,
                               ["environment 'production' is not marked for probing",
                                "probe.environments", "nothing was signed or sent"],
                               verifier=v, env="production")
            # Named, it is probed: its second audience makes other-audience apply.
            named = self.inst.write_config(
                "named.yaml", read(self.inst.config).replace(
                    "environments: [ development ]", "environments: [ development, production ]"))
            p, report = self.inst.probe("production/api", v.url, config=named)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(graded(report, "FAIL"), [])
            other = next(c for c in report["checks"] if c["name"] == "other-audience")
            self.assertEqual((other["verdict"], other["sent"]), ("pass", True))
            self.assertEqual(len(self.inst.audit("production", "probe.run")), 1)
        finally:
            v.close()

    def test_key_set_that_cannot_sign(self):
        self.assertRefused(["development/alg-es384", self.strict.url], 1,
                           ["cannot sign probe tokens, nothing was sent", "no active key"],
                           verifier=self.strict)
        self.assertRefused(["development/stray", self.strict.url], 1,
                           ["cannot sign probe tokens, nothing was sent", "no issuer"],
                           verifier=self.strict)
        self.assertRefused(["development/nothing", self.strict.url], 1,
                           ["unknown key set development/nothing"], verifier=self.strict)

    def test_bad_options(self):
        url = self.strict.url
        cases = [
            ([ES, url, "--method", "DELETE"], "--method 'DELETE'"),
            ([ES, url, "--header", "X-Api-Key: 1"], "no --header carries the token"),
            ([ES, url, "--header", "Bad Header {token}"], "--header #1"),
            ([ES, url, "--accept", "ok"], "--accept 'ok'"),
            ([ES, url, "--claims", '{"aud": "x"}'], "--aud"),
            ([ES, url, "--claims", "[1]"], "--claims: must be a JSON object"),
            ([ES, url, "--timeout", "2m"], "--timeout"),
            (["development", url], "ENV/NAME"),
        ]
        for args, words in cases:
            with self.subTest(args=args[2:]):
                self.assertRefused(args, 2, [words], verifier=self.strict)
        p = self.inst.run("probe", ES)
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing --url", p.stderr)

    def test_unreachable_endpoint(self):
        port = closed_port()
        p, report = self.inst.probe(ES, f"http://127.0.0.1:{port}/api")
        self.assertEqual(p.returncode, 1)
        self.assertIsNone(report)
        self.assertIn(f"cannot probe http://127.0.0.1:{port}/api", p.stderr)
        self.assertIn("no token was sent", p.stderr)
        result = self.inst.audit("development", "probe.result")[-1]["after"]
        self.assertIn("no answer to the request without a token", result["stopped"])

    def test_answer_that_is_not_http(self):
        srv = NotHttp()
        try:
            p, report = self.inst.probe(ES, f"http://127.0.0.1:{srv.port}/api")
            self.assertEqual(p.returncode, 1)
            self.assertIsNone(report)
            self.assertIn("not HTTP", p.stderr)
            self.assertIn("no token was sent", p.stderr)
            self.assertNotIn(b"eyJ", srv.received)
            self.assertNotIn(b"Authorization", srv.received)
        finally:
            srv.close()

    def test_endpoint_without_token_check(self):
        v = Verifier(self.inst, ES, "strict", "--open")
        try:
            p, report = self.inst.probe(ES, v.url)
            self.assertEqual(p.returncode, 1)
            self.assertTrue(report["stopped"])
            self.assertIn("accepted a request without any token", p.stderr)
            self.assertEqual([r["token"] for r in v.requests()], [None])
        finally:
            v.close()

    def test_genuine_token_refused(self):
        v = Verifier(self.inst, ES, "strict", aud="another.example.test")
        try:
            p, report = self.inst.probe(ES, v.url)
            self.assertEqual(p.returncode, 1)
            self.assertIn("refused the genuine token (HTTP 401)", report["stopped"])
            self.assertIn("the probe stopped", p.stderr)
            seen = v.requests()
            self.assertEqual(len(seen), 2)
            genuine = next(c for c in report["checks"] if c["name"] == "genuine")
            self.assertEqual(seen[1]["jti"], genuine["jti"])
            self.assertEqual(graded(report, "FAIL"), ["genuine"])
        finally:
            v.close()

    def test_audit_log_and_token_promises(self):
        before = len(self.inst.audit("development", "probe.run"))
        p, report = self.inst.probe(ES, self.strict.url)
        self.assertEqual(p.returncode, 0, p.stderr)
        runs = self.inst.audit("development", "probe.run")
        self.assertEqual(len(runs), before + 1)
        run = runs[-1]
        self.assertEqual((run["keyset"], run["kid"], run["seq"]),
                         ("alg-es256", self.kid, report["audit_seq"]))
        recorded = {t["jti"]: t for t in run["after"]["tokens"]}
        # Every token the endpoint saw is recorded, with the probe prefix.
        seen = [r for r in self.strict.requests()[-len(report["checks"]):] if r["token"]]
        tokens = {claims_of(r["token"])["jti"]: r["token"] for r in seen
                  if claims_of(r["token"])["jti"] in recorded}
        sent = [c for c in report["checks"] if c["sent"] and c["name"] != "no-token"]
        self.assertEqual(sorted(tokens), sorted(c["jti"] for c in sent))
        self.assertTrue(all(j.startswith("keymgr-probe-") for j in recorded))
        result = self.inst.audit("development", "probe.result")[-1]["after"]
        self.assertEqual((result["run"], result["pass"], result["failed"]),
                         (run["after"]["run"], report["summary"]["pass"], []))

        jwks = json.loads(read(self.inst.jwks_file(ES)))["keys"]
        every_key = jwks + json.loads(read(self.inst.jwks_file("production/api")))["keys"]
        genuine = claims_of(tokens[next(c["jti"] for c in sent if c["name"] == "genuine")])
        now = genuine["iat"]
        self.assertEqual(genuine["exp"] - now, 60)
        for c in sent:
            token, name = tokens[c["jti"]], c["name"]
            cl = claims_of(token)
            with self.subTest(check=name):
                if recorded[c["jti"]]["signed_by"] == "key set":
                    if name == "signature-length":   # the genuine signature, one byte more
                        h, pl, s = token.split(".")
                        token = f"{h}.{pl}." + base64.urlsafe_b64encode(
                            b64d(s)[:-1]).rstrip(b"=").decode()
                    self.assertEqual(verifies_with(token, jwks), [self.kid])
                    self.assertLessEqual(cl["exp"] - max(cl["nbf"], now), 60)
                else:
                    self.assertEqual(verifies_with(token, every_key), [])
                    if name in ("jku", "x5u", "jwk-embedded"):   # the run key's own kid
                        self.assertNotIn(header_of(token)["kid"],
                                         [k["kid"] for k in every_key])
        by_name = {c["name"]: claims_of(tokens[c["jti"]]) for c in sent}
        self.assertLess(by_name["expired"]["exp"], now)
        self.assertGreater(by_name["not-yet-valid"]["nbf"], now)
        over = by_name["overlong-lifetime"]
        self.assertGreater(over["exp"] - over["iat"], fixture.MAX_TTL)
        self.assertLessEqual(over["exp"], now + 60)

    def test_table_and_html(self):
        html = os.path.join(self.inst.dir, "report.html")
        p = self.inst.run("probe", ES, "--url", self.strict.url, "--output", html)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith(f"probe {ES} (kid {self.kid}, ES256) -> GET "))
        self.assertEqual(lines[1].split(), ["CHECK", "EXPECTED", "GOT", "VERDICT", "NOTE"])
        rows = {ln.split()[0]: ln.split() for ln in lines[2:-1]}
        self.assertEqual(rows["genuine"][:4], ["genuine", "accepted", "accepted", "200"])
        self.assertEqual(rows["alg-none"][:5], ["alg-none", "refused", "refused", "401",
                                                "pass"])
        self.assertEqual(rows["rsa-pss-pkcs1-swap"][3], "n/a")
        self.assertTrue(lines[-1].startswith("26 pass, 0 FAIL, 0 warn, 0 error, 3 n/a"))
        self.assertEqual(stat.S_IMODE(os.stat(html).st_mode), 0o644)
        page = read(html)
        self.assertIn("<h1>keymgr probe: clean</h1>", page)
        for row in rows:
            self.assertIn(f"<td>{row}</td>", page)
        self.assertIn("kid x&#39; UNION SELECT &#39;keymgr-probe&#39; --", page)
        self.assertNotIn("x' UNION", page)


if __name__ == "__main__":
    fixture.main()
