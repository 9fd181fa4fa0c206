# SPDX-License-Identifier: Apache-2.0
"""OIDC discovery next to every JWKS, and static hosting (issue 20; docs/discovery.md,
docs/static-hosting.md).

served:     keymgrd serves /dev/KEYSET/.well-known/openid-configuration for each key set with an
            issuer, when the environment sets http.public_url: application/json, a strong ETag
            of its bytes, the key set's Cache-Control; exactly issuer, jwks_uri (public_url +
            the key set's JWKS path), response_types_supported, subject_types_supported and the
            key set's algorithm, in canonical JSON.
static:     keymgrd keeps http.static_dir up to date; nginx serves it (the JWKS tree at
            public_url, each issuer's host from issuers/HOST). Authlib's OpenID provider
            metadata checks pass on each member of the document fetched where Discovery 1.0 puts
            it (issuer + /.well-known/openid-configuration, by Host): issuer, jwks_uri,
            response_types_supported, subject_types_supported,
            id_token_signing_alg_values_supported (authorization_endpoint is left out, as
            Kubernetes does), and its issuer is the key set's; PyJWT's
            JWKS client, given that document's jwks_uri, verifies tokens signed by keymgr, and
            after a rotation verifies both the new and the previous key's tokens; the
            manifest's serial is keymgrd's and each ETag is the one keymgrd sends;
            `keymgr publish --to` writes the same files as keymgrd.
withdrawn:  a reload that removes http.public_url takes the discovery documents out (404).
bad:        public_url that is not https (or http on loopback), has a query or a trailing '/':
            refused at load, naming the key; `keymgr publish` without --to, with a key set
            instead of an environment, to a missing directory, to a file, to a directory
            others may write: clear errors, nothing written.

Usage: /usr/bin/python3 test_discovery.py KEYMGR KEYMGRD
"""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "signing"))
from signing_fixture import (CLAIMS, Daemon, Failure, SignSetup, call, check,  # noqa: E402
                             run_tests, wait_for)

import jwt  # noqa: E402
from authlib.oidc.discovery import OpenIDProviderMetadata  # noqa: E402

keymgr, keymgrd = sys.argv[1:3]
ISSUERS = {"api": "https://issuer.test", "web": "https://web.issuer.test/tenant-a"}
ALGS = {"api": "RS256", "web": "ES256"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class DiscoverySetup(SignSetup):
    """Two key sets with issuers of their own, public_url and static_dir in http:."""

    def __init__(self, public_url, static_dir, **kw):
        self.public_url = public_url
        self.static_dir = static_dir
        super().__init__(keymgr, keymgrd, keysets=("api", "web"),
                         signers={"api": "{ users: [ root ] }", "web": "{ users: [ root ] }"},
                         # a minute's tokens and two minutes' retention: the old key stays
                         # in the JWKS while a loaded machine verifies the old token with it
                         policy={"rotation_period": "10m", "max_token_ttl": "1m",
                                 "retire_retention": "2m"}, **kw)

    def config_text(self, policy=None, keyset_policy=None, extra_daemon=None, signers=None,
                    public_url=None):
        text = super().config_text(policy, keyset_policy, extra_daemon, signers)
        url = self.public_url if public_url is None else public_url
        out, current = [], None
        for line in text.splitlines():
            s = line.strip()
            if line.startswith("      ") and not line.startswith("       ") and s.endswith(":"):
                current = s[:-1]
            if s.startswith("issuer:") and current in ISSUERS:
                line = f"        issuer: {ISSUERS[current]}"
            out.append(line)
            if line == "    http:":
                if url:
                    out.append(f"      public_url: {url}")
                if self.static_dir:
                    out.append(f"      static_dir: {self.static_dir}")
        return "\n".join(out) + "\n"


def etag(body):
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def expected_doc(issuer, public_url, keyset, alg="ES256"):
    return {"id_token_signing_alg_values_supported": [alg], "issuer": issuer,
            "jwks_uri": f"{public_url}/dev/{keyset}/jwks.json",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"]}


class Nginx:
    """nginx on 127.0.0.1: the static tree at its root, each issuer host from issuers/."""

    def __init__(self, tmp, tree, port):
        self.tmp = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.tmp, "logs"))
        servers = [f"server {{ listen 127.0.0.1:{port} default_server; root {tree}; }}"]
        for host in ("issuer.test", "web.issuer.test"):
            servers.append(f"server {{ listen 127.0.0.1:{port}; server_name {host}; "
                           f"root {tree}/issuers/{host}; }}")
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""user root; daemon off; worker_processes 1;
pid {self.tmp}/nginx.pid; error_log {self.tmp}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off; client_body_temp_path {self.tmp}; proxy_temp_path {self.tmp};
  fastcgi_temp_path {self.tmp}; uwsgi_temp_path {self.tmp}; scgi_temp_path {self.tmp};
  types {{ application/json json; }} default_type application/json;
  {" ".join(servers)}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.tmp, "-e",
                                      os.path.join(self.tmp, "logs/error.log"), "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = port
        wait_for(lambda: self.try_get("/manifest.json") is not None or
                 self.proc.poll() is not None, "nginx listening")
        check(self.proc.poll() is None, f"nginx exited: {self.proc.stderr.read()}")

    def try_get(self, path, host=None):
        try:
            return self.get(path, host)
        except OSError:
            return None

    def get(self, path, host=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path, headers={"Host": host} if host else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def sign(s, keyset):
    r = call(s.socket, {"op": "sign", "keyset": f"dev/{keyset}", "claims": CLAIMS, "ttl": "2s"})
    check(r.get("ok"), f"sign {keyset}: {r}")
    return r["jwt"]


def verify_with_client(token, jwks_uri):
    """PyJWT's own JWKS client, no cache: the key comes from jwks_uri each time."""
    client = jwt.PyJWKClient(jwks_uri, cache_jwk_set=False, cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["ES256", "RS256"], audience="api.test",
                      options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})


def tree_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def test_served_and_static():
    tmp = tempfile.mkdtemp(prefix="kd-disc-")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    tree = os.path.join(tmp, "static")
    os.mkdir(tree, 0o755)
    s = DiscoverySetup(public, tree)
    d = ng = None
    try:
        for ks in ("api", "web"):
            s.keyset_create(f"dev/{ks}", ALGS[ks])
            s.run("rotate", f"dev/{ks}")
        d = Daemon(s, verbose=False)
        d.wait_event("signing-key", keyset="api", result="ok")
        d.wait_event("static-tree", result="ok")
        ng = Nginx(tmp, tree, port)

        # keymgrd's own path
        for ks in ("api", "web"):
            st, h, body = d.http("GET", f"/dev/{ks}/.well-known/openid-configuration")
            check(st == 200, f"discovery of {ks}: {st}")
            check(h["content-type"] == "application/json", f"content-type {h['content-type']}")
            check(h["etag"] == etag(body), "ETag is not the document's")
            check(h["cache-control"] == "public, max-age=2", f"cache-control {h['cache-control']}")
            doc = json.loads(body)
            check(doc == expected_doc(ISSUERS[ks], public, ks, ALGS[ks]),
                  f"document of {ks}: {doc}")
            check(body == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
                  "not canonical JSON")

        # where OIDC clients look: issuer + /.well-known/openid-configuration, on nginx
        tokens = {}
        for ks, host, path in (("api", "issuer.test", ""), ("web", "web.issuer.test",
                                                              "/tenant-a")):
            st, body = ng.get(f"{path}/.well-known/openid-configuration", host=host)
            check(st == 200, f"static discovery of {ks}: {st}")
            meta = OpenIDProviderMetadata(json.loads(body))
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"   # jwks_uri: http on loopback
            # Authlib's checks of each member the document has; like the document Kubernetes
            # serves for its service-account issuer, it has no authorization_endpoint (keymgr
            # runs no login), which meta.validate() would require, and nothing else missing.
            for name in ("issuer", "jwks_uri", "response_types_supported",
                         "subject_types_supported"):
                getattr(meta, "validate_" + name)()
            # Discovery 1.0 wants RS256 in the list (an OP that issues ID tokens must offer
            # it); an ES256 key set lists only ES256, the one algorithm its keys sign with.
            if ALGS[ks] == "RS256":
                meta.validate_id_token_signing_alg_values_supported()
            else:
                try:
                    meta.validate_id_token_signing_alg_values_supported()
                    raise Failure("an ES256 key set's document passed the RS256 rule?")
                except ValueError as e:
                    check("RS256" in str(e), f"authlib: {e}")
            try:
                meta.validate()
                raise Failure("validate() passed without authorization_endpoint?")
            except ValueError as e:
                check("authorization_endpoint" in str(e), f"authlib: {e}")
            check(meta["issuer"] == ISSUERS[ks], f"issuer {meta['issuer']}")
            check(body == d.http("GET", f"/dev/{ks}/.well-known/openid-configuration")[2],
                  "the static document differs from keymgrd's")
            tokens[ks] = sign(s, ks)
            claims = verify_with_client(tokens[ks], meta["jwks_uri"])
            check(claims["iss"] == ISSUERS[ks], f"iss {claims['iss']}")

        # the manifest agrees with keymgrd
        manifest = json.loads(ng.get("/manifest.json")[1])
        status = json.loads(s.run("status", "--json").stdout)
        check(manifest["serial"] == status["environments"][0]["serial"],
              f"manifest serial {manifest['serial']}")
        for f in manifest["files"]:
            if f["path"].startswith("issuers/"):
                continue
            st, h, body = d.http("GET", "/" + f["path"])
            check(st == 200 and h["etag"] == f["etag"] and len(body) == f["bytes"],
                  f"manifest entry {f} differs from keymgrd's answer")

        # a rotation: the tree follows; old and new tokens verify through jwks_uri
        old_serial = manifest["serial"]
        s.run("rotate", "dev/api", "--now", "--force")
        s.run("tick")
        wait_for(lambda: json.loads(ng.get("/manifest.json")[1])["serial"] > old_serial,
                 "the static tree after the rotation")
        meta = json.loads(ng.get("/.well-known/openid-configuration", host="issuer.test")[1])
        new = sign(s, "api")
        check(jwt.get_unverified_header(new)["kid"] !=
              jwt.get_unverified_header(tokens["api"])["kid"], "no new key signs")
        verify_with_client(new, meta["jwks_uri"])
        verify_with_client(tokens["api"], meta["jwks_uri"])

        # keymgr publish --to writes what keymgrd wrote
        other = os.path.join(tmp, "other")
        os.mkdir(other, 0o755)
        out = json.loads(s.run("publish", "dev", "--to", other, "--json").stdout)
        check(out["discovery"] == 2 and out["written"] == len(tree_files(other)) - 1,
              f"publish --json: {out}")
        check(tree_files(other) == tree_files(tree), "keymgr publish and keymgrd differ")
        again = json.loads(s.run("publish", "dev", "--to", other, "--json").stdout)
        check(again["written"] == 0 and again["unchanged"] == out["written"],
              f"a second publish rewrote files: {again}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        if ng is not None:
            ng.stop()
        os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_withdrawn_on_reload():
    s = DiscoverySetup("https://keys.example.com", None)
    d = None
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        d = Daemon(s, verbose=False)
        path = "/dev/api/.well-known/openid-configuration"
        wait_for(lambda: d.http("GET", path)[0] == 200, "the discovery document")
        doc = json.loads(d.http("GET", path)[2])
        check(doc["jwks_uri"] == "https://keys.example.com/dev/api/jwks.json",
              f"jwks_uri {doc['jwks_uri']}")
        s.write_config(s.config_text(public_url=""))
        s.run("reload")
        wait_for(lambda: d.http("GET", path)[0] == 404, "the document withdrawn")
        check(d.http("GET", "/dev/api/jwks.json")[0] == 200, "the JWKS went too")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


def test_bad_input():
    s = DiscoverySetup("https://keys.example.com", None)
    try:
        s.keyset_create("dev/api")
        for url, words in (("ftp://keys.example.com", "https://"),
                           ("http://keys.example.com", "https"),
                           ("https://keys.example.com/", "trailing '/'"),
                           ("https://keys.example.com/x?y=1", "query")):
            s.write_config(s.config_text(public_url=url))
            p = s.run("policy", "check", "dev", expect=None)
            check(p.returncode != 0 and "public_url" in p.stderr and words in p.stderr,
                  f"public_url {url}: {p.returncode} {p.stderr[-300:]}")
        s.write_config(s.config_text())
        tmp = tempfile.mkdtemp(prefix="kd-disc-bad-")
        try:
            p = s.run("publish", "dev", expect=2)
            check("--to" in p.stderr, p.stderr)
            p = s.run("publish", "dev/api", "--to", tmp, expect=2)
            check("environment" in p.stderr, p.stderr)
            p = s.run("publish", "dev", "--to", os.path.join(tmp, "missing"), expect=1)
            check("missing" in p.stderr, p.stderr)
            f = os.path.join(tmp, "file")
            open(f, "w").close()
            p = s.run("publish", "dev", "--to", f, expect=1)
            check("not a directory" in p.stderr, p.stderr)
            openx = os.path.join(tmp, "open")
            os.mkdir(openx)
            os.chmod(openx, 0o777)
            p = s.run("publish", "dev", "--to", openx, expect=1)
            check("writable by group or others" in p.stderr and "chmod" in p.stderr, p.stderr)
            check(os.listdir(openx) == [], "files written into a refused directory")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        s.close()


if __name__ == "__main__":
    try:
        sys.exit(run_tests([
            ("discovery.served-and-static", test_served_and_static),
            ("discovery.withdrawn-on-reload", test_withdrawn_on_reload),
            ("discovery.bad-input", test_bad_input),
        ]))
    except Failure as e:
        print(f"FAIL {e}")
        sys.exit(1)
