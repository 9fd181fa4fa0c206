# SPDX-License-Identifier: Apache-2.0
"""The hsm suite: keymgr's key lifecycle on one PKCS#11 implementation (tests/hsm/modules.py).

Usage: /usr/bin/python3 test_hsm.py KEYMGR KEYMGRD P11FAULT MODULE [--lean] [unittest options]

For every algorithm MODULE supports (--lean: the first one only, for the sanitizer build):
  keyset create (the first key generated, its private key read back independently by
  p11attrs.py: sensitive, never extractable, sign only but for the module's recorded
  exception), sign, verify with PyJWT and with `keymgr verify`, rotate, sign with the
  successor, revoke and destroy the first key (gone from the JWKS and the token), and
  reconcile after keymgr was SIGKILLed inside a generation (the key pair in the token, the
  store's intent pending: tests/fault's p11fault wraps the module and kills the process at the
  new key's test signature).
Then an audit checkpoint, whose record the token keeps as a private data object, is written
and compared by `audit verify`.
For every algorithm it lacks: `keyset create` refused, naming the module, the missing
mechanism and what the token can do, with nothing written.
On p11-kit remoting, keymgrd survives a failover of the network HSM (test_zy_failover).
Then the module's row of docs/hsm-compat.md is checked against what ran here.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import jwt  # python3-jwt, for /usr/bin/python3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import modules  # noqa: E402
import wrapper  # noqa: E402

KEYMGR = P11FAULT = MODULE = KEYMGRD = None
LEAN = False
ISSUER = "https://auth.hsm.example.com"
AUDIENCE = "api.example.com"
CLAIMS = {"sub": "alice", "client_id": "hsm-tests", "aud": AUDIENCE}
COMPAT = os.path.join(HERE, "..", "..", "docs", "hsm-compat.md")
RESULTS = {}   # alg -> "yes" (the whole lifecycle passed) / "no" (refused at keyset create)
# Modules whose tokens keep no private data objects (docs/hsm-compat.md): NSS softoken
# refuses token data objects with CKR_ATTRIBUTE_VALUE_INVALID, kmsp11 has no C_CreateObject.
NO_DATA_OBJECTS = {"nss", "kmsp11"}
FITTED_LABEL = re.compile(r"[A-Za-z0-9_-]+")


def slug(alg):
    return "k-" + alg.lower()


class HsmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="keymgr-hsm-")
        os.chmod(cls.dir, 0o700)
        cls.m = modules.start(MODULE, cls.dir)
        cls.env = cls.m.process_env()
        for v in ("KEYMGR_CONFIG", "KEYMGR_TOKEN", "KEYMGR_PIN_SOURCE", "KEYMGR_MODULE",
                  "KEYMGR_CONTROL_SOCKET", "KEYMGR_STATE_DIR"):
            cls.env.pop(v, None)
        cls.config = cls.write_config("keymgr.yaml", cls.m.module)
        # The same environment through p11fault (tests/fault), which kills keymgr at the new
        # key's first C_SignInit: after C_GenerateKeyPair, before the store confirms it.
        cls.crash_config = cls.write_config("crash.yaml", P11FAULT)

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def write_config(cls, name, module_path):
        keysets = "".join(f'      {slug(a)}: {{ issuer: "{ISSUER}", audiences: [ {AUDIENCE} ] }}\n'
                          for a in modules.ALL_ALGS)
        purposes = ", ".join(slug(a) for a in modules.ALL_ALGS)
        token = cls.m.config_token().replace(f"module: {cls.m.module}", f"module: {module_path}")
        text = (f"version: 1\nenvironments:\n  hsm:\n    token:\n{token}"
                f"    store: {cls.dir}/hsm.db\n"
                f"    policy:\n      purposes: [ {purposes} ]\n      min_rsa_bits: 2048\n"
                f"    keysets:\n{keysets}")
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    # -- running things ----------------------------------------------------------------------

    def keymgr(self, *args, config=None, ok=True, env=None):
        argv, tag = wrapper.wrap([KEYMGR, "-c", config or self.config] + list(args))
        e = dict(self.env, **(env or {}))
        p = subprocess.run(argv, env=e, capture_output=True, text=True, cwd=self.dir,
                           timeout=wrapper.timeout(300))
        report = wrapper.check(tag)
        self.assertFalse(report, f"keymgr {args}: {report}")
        self.assertNotIn(self.m.pin, p.stdout + p.stderr, "the PIN appears in the output")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, p.stderr)
        if ok:
            self.assertEqual(p.returncode, 0, f"keymgr {' '.join(args)}: exit {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def json(self, *args, **kw):
        return json.loads(self.keymgr(*args, "--json", **kw).stdout)

    def token_keys(self):
        argv = ["/usr/bin/python3", os.path.join(HERE, "p11attrs.py"),
                getattr(self.m, "real_module", self.m.module),
                self.m.label, self.m.pin_file] + ([self.m.init_args] if self.m.init_args else [])
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"p11attrs: {p.stderr}")
        return json.loads(p.stdout)["keys"]

    def active(self, alg):
        keys = [k for k in self.json("key", "list", "hsm/" + slug(alg)) if k["state"] == "active"]
        self.assertEqual(len(keys), 1, f"active keys of {alg}: {keys}")
        return keys[0]

    def verify_both(self, alg, token, kid):
        jwks_path = os.path.join(self.dir, f"jwks-{alg}.json")
        self.keymgr("jwks", "hsm/" + slug(alg), "--output", jwks_path)
        with open(jwks_path) as f:
            jwks = json.load(f)
        self.assertEqual(jwt.get_unverified_header(token)["kid"], kid)
        key = next(k for k in jwks["keys"] if k["kid"] == kid)
        pyjwt_key = jwt.PyJWK(key, algorithm=alg).key
        claims = jwt.decode(token, pyjwt_key, algorithms=[alg], audience=AUDIENCE,
                            issuer=ISSUER)
        self.assertEqual(claims["sub"], "alice")
        typ = jwt.get_unverified_header(token).get("typ", "JWT")
        self.keymgr("verify", "--jwks", jwks_path, "--alg", alg, "--iss", ISSUER, "--aud",
                    AUDIENCE, "--typ", typ, token)
        return jwks_path

    def sign(self, alg):
        return self.keymgr("sign", "hsm/" + slug(alg), "--claims", json.dumps(CLAIMS), "--ttl",
                           "10m").stdout.strip()

    def create(self, alg, ok=True):
        args = ["keyset", "create", "hsm/" + slug(alg), "--alg", alg, "--owner", "hsm-suite",
                "--purpose", slug(alg)]
        if alg[0] in "RP":
            args += ["--bits", "2048"]
        return self.keymgr(*args, ok=ok)

    # -- the cases ---------------------------------------------------------------------------

    def lifecycle(self, alg):
        caps = self.json("token", "info", "--env", "hsm")
        self.assertTrue(next(a for a in caps["algorithms"] if a["alg"] == alg)["supported"])
        self.create(alg)
        first = self.active(alg)
        cka_id = first["token"]["cka_id"]
        # Keys are found by the CKA_ID the token holds: a token that keeps 2 bytes (yubihsm)
        # gets 2-byte ids, drawn free of collisions (a 20-byte one would be cut to "KM").
        id_bytes = getattr(self.m, "id_bytes", 20)
        self.assertEqual(len(cka_id), 2 * id_bytes, cka_id)
        if id_bytes < 20:
            self.assertNotEqual(cka_id.lower(), "4b4d", "the cut of a 20-byte id was kept")
        if getattr(self.m, "ids_assigned", False):
            # kmsp11: the id is the one the token chose (keymgr's start with "KMGR").
            self.assertFalse(cka_id.lower().startswith("4b4d4752"), cka_id)
            self.assertIn("C_GenerateKeyPair ASSIGNID", self.m.fault_log(),
                          "the token never refused a CKA_ID")

        # The private key as the token holds it, read without keymgr.
        attrs = self.token_keys()[cka_id]
        if getattr(self.m, "label_max", None):
            self.assertRegex(attrs["label"], FITTED_LABEL, attrs)
            self.assertLessEqual(len(attrs["label"]), self.m.label_max, attrs)
        if alg == "EdDSA" and getattr(self.m, "ed25519_params", None):
            # luna: the RFC 8410 OID and "edwards25519" were refused, the token's OID taken
            log = self.m.fault_log()
            self.assertIn("C_GenerateKeyPair EDPARAMS", log, "no encoding was refused")
        self.assertTrue(attrs["private"] and attrs["public"], attrs)
        self.assertIs(attrs["sensitive"], True, attrs)
        self.assertIs(attrs["extractable"], False, attrs)
        self.assertIn(attrs["never_extractable"], (True, None), attrs)
        self.assertIs(attrs["sign"], True, attrs)
        for other in ("unwrap", "derive"):
            self.assertIn(attrs[other], (False, None), f"{other}: {attrs}")
        if caps["exceptions"]:
            # The recorded exception (tpm2-pkcs11: CKA_DECRYPT is always TRUE) is real, and
            # named as a warning.
            self.assertIs(attrs["decrypt"], True, attrs)
            self.assertIn("CKA_DECRYPT", caps["exceptions"][0])
            p = self.keymgr("token", "info", "--env", "hsm")
            self.assertIn("warning: recorded exception", p.stderr)
        else:
            self.assertIn(attrs["decrypt"], (False, None), attrs)
        self.exception_named(alg, first["kid"], bool(caps["exceptions"]))

        token = self.sign(alg)
        self.verify_both(alg, token, first["kid"])

        self.json("rotate", "hsm/" + slug(alg), "--now", "--force")
        second = self.active(alg)
        self.assertNotEqual(second["kid"], first["kid"])
        self.verify_both(alg, self.sign(alg), second["kid"])

        self.keymgr("revoke", first["kid"], "--env", "hsm", "--reason", "hsm suite")
        jwks = json.loads(self.keymgr("jwks", "hsm/" + slug(alg)).stdout)
        self.assertNotIn(first["kid"], [k["kid"] for k in jwks["keys"]])
        self.keymgr("destroy", first["kid"], "--env", "hsm")
        keys = self.token_keys()
        self.assertNotIn(cka_id, keys)
        self.assertIn(second["token"]["cka_id"], keys)

        # keymgr killed inside a generation, then reconcile.
        p = self.keymgr("rotate", "hsm/" + slug(alg), "--now", "--force",
                        config=self.crash_config, ok=False,
                        env={"KEYMGR_P11FAULT_MODULE": getattr(self.m, "real_module",
                                                               self.m.module),
                             "KEYMGR_P11FAULT": "C_SignInit:KILL"})
        self.assertEqual(p.returncode, -9, f"not killed: {p.returncode} {p.stderr}")
        pending = [k for k in self.json("key", "list", "hsm/" + slug(alg)) if k["pending"]]
        self.assertEqual(len(pending), 1, "the killed generation left no pending intent")
        self.assertIn(pending[0]["token"]["cka_id"], self.token_keys(),
                      "the killed generation left no key pair in the token")
        self.keymgr("reconcile", "hsm")
        after = self.json("key", "list", "hsm/" + slug(alg))
        self.assertFalse([k for k in after if k["pending"]], after)
        adopted = [k for k in after if k["token"]["cka_id"] == pending[0]["token"]["cka_id"]]
        self.assertEqual(len(adopted), 1, after)
        self.assertNotEqual(adopted[0]["kid"], "", f"the key pair was not adopted: {after}")
        self.exception_named(alg, adopted[0]["kid"], bool(caps["exceptions"]))
        self.assertEqual(self.active(alg)["kid"], second["kid"])
        self.verify_both(alg, self.sign(alg), second["kid"])
        ids = [k["token"]["cka_id"] for k in after]
        self.assertEqual(len(ids), len(set(ids)), f"two keys share a CKA_ID: {after}")
        RESULTS[alg] = "yes"

    def exception_named(self, alg, kid, expected):
        """A key of a token with a recorded exception is never accepted silently: the audit
        log records the exception with the key (token.exception), and `keyset show` and
        `policy check` name it as a warning. A token without one gets none of these."""
        events = [e for e in self.json("audit", "log", "hsm", "--kid", kid)
                  if e["action"] == "token.exception"]
        show = self.json("keyset", "show", "hsm/" + slug(alg))
        mine = [e for e in show["exceptions"] if e["kid"] == kid]
        text = self.keymgr("keyset", "show", "hsm/" + slug(alg)).stdout
        p = self.keymgr("policy", "check", "hsm", "--json", ok=False)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        warned = [w for w in json.loads(p.stdout)["warnings"]
                  if w["check"] == "token-exception" and w["kid"] == kid]
        if not expected:
            self.assertEqual((events, mine, warned), ([], [], []))
            self.assertNotIn("recorded exception", text)
            return
        self.assertEqual(len(events), 1, events)
        self.assertIn("CKA_DECRYPT", events[0]["after"]["exception"])
        self.assertEqual(events[0]["after"]["token_label"], self.m.label)
        self.assertEqual(len(mine), 1, show["exceptions"])
        self.assertIn("CKA_DECRYPT", mine[0]["message"])
        self.assertRegex(text, r"warning +key " + re.escape(kid) + r": .*recorded exception")
        self.assertEqual(len(warned), 1, p.stdout)
        self.assertIn("CKA_DECRYPT", warned[0]["message"])

    def refused(self, alg):
        before = self.json("keyset", "list", "hsm")
        p = self.create(alg, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"PKCS#11 module {self.m.module}", p.stderr)
        self.assertIn(f"cannot do {alg}", p.stderr)
        self.assertRegex(p.stderr, r"(no CKM_|quirk table)")
        self.assertIn("it can do: " + " ".join(a for a in modules.ALL_ALGS if a in self.m.algs),
                      p.stderr)
        self.assertEqual(before, self.json("keyset", "list", "hsm"), "the refusal wrote")
        RESULTS[alg] = "no"

    def pin_too_long(self):
        """A PIN longer than ulMaxPinLen is refused before C_Login: no try toward the lockout
        is spent (opencryptoki answers it with CKR_PIN_INCORRECT and counts it)."""
        long_pin = os.path.join(self.dir, "long.pin")
        fd = os.open(long_pin, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("9" * (self.m.pin_max + 1) + "\n")
        text = open(self.config).read().replace(f"pin: file:{self.m.pin_file}",
                                                f"pin: file:{long_pin}")
        path = os.path.join(self.dir, "long-pin.yaml")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        p = self.keymgr("token", "info", "--env", "hsm", config=path, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"the PIN has {self.m.pin_max + 1} characters but the token accepts",
                      p.stderr)
        self.assertNotIn("CKR_PIN_INCORRECT", p.stderr)
        # The right PIN still works.
        self.keymgr("token", "info", "--env", "hsm")

    def test_z_audit_checkpoint_record(self):
        """The audit log's checkpoint, recorded in the token as a private data object
        (CKO_DATA, CKA_PRIVATE; issue 16), on this module: `audit checkpoint` writes it,
        `audit verify` reads it back and compares it with the store. A token that keeps no
        such object (NSS softoken) gets the checkpoint without the record, and a warning.
        The audit key is ES256, or PS256 (RSA 3072) on a token without EC (opencryptoki)."""
        p = self.keymgr("audit", "checkpoint", "hsm", "--json")
        cp = json.loads(p.stdout)[0]
        v = self.json("audit", "verify", "hsm")[0]
        self.assertTrue(v["ok"], v)
        made = [e for e in self.json("audit", "log", "hsm")
                if e["action"] == "audit.key.create"]
        self.assertEqual(len(made), 1, made)
        self.assertEqual(made[0]["after"]["alg"],
                         "ES256" if "ES256" in modules.KINDS[MODULE].algs else "PS256", made)
        if MODULE in NO_DATA_OBJECTS:
            self.assertFalse(cp["token_record"], cp)
            self.assertIn("keeps no record of this checkpoint", p.stderr)
            self.assertEqual(v["token_record"], "none", v)
            return
        self.assertTrue(cp["token_record"], cp)
        self.assertEqual(v["token_record"], "compared", v)
        self.assertEqual(v["anchor_seq"], cp["seq"], v)

    def failover(self):
        """p11-kit remoting: the network HSM fails over while keymgrd runs. The server and
        its connections are killed: keymgrd's signatures fail (with the module's error, and
        p11-kit's client answers CKR_DEVICE_ERROR to every call from then on, however often
        the sessions are re-opened); the server comes back, and keymgrd signs again without
        a restart: after repeated failed re-opens the token layer initialises the module
        again (C_Finalize + C_Initialize, pkcs11/module.c), paced by keymgrd's backoff."""
        user = pwd.getpwuid(os.getuid()).pw_name
        sock = os.path.join(self.dir, "fo.sock")
        token = self.m.config_token()
        text = (f"version: 1\nenvironments:\n  fo:\n    token:\n{token}"
                f"    store: {self.dir}/fo.db\n    policy:\n      purposes: [ fo ]\n"
                f"    keysets:\n      fo: {{ issuer: \"{ISSUER}\", audiences: [ {AUDIENCE} ], "
                f"signers: {{ users: [ {user} ] }} }}\n"
                f"daemon:\n  listen: 127.0.0.1\n  port: 8080\n  admin_port: 0\n"
                f"  control_socket: {sock}\n  poll_interval: 1\n")
        config = os.path.join(self.dir, "failover.yaml")
        with open(config, "w") as f:
            f.write(text)
        os.chmod(config, 0o600)
        self.keymgr("keyset", "create", "fo/fo", "--alg", "ES256", "--owner", "hsm-suite",
                    "--purpose", "fo", config=config)
        log_path = os.path.join(self.dir, "keymgrd-failover.log")
        argv, tag = wrapper.wrap([KEYMGRD, "-c", config, "--port", "0", "--verbose"])
        with open(log_path, "w") as log:
            d = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

        def log_text():
            with open(log_path) as f:
                return f.read()

        def log_has(text):
            return text in log_text()

        def sign():
            return self.keymgr("sign", "fo/fo", "--via", "daemon", "--claims",
                               json.dumps(CLAIMS), "--ttl", "10m", config=config, ok=False)

        def wait(what, cond, limit=120.0):
            end = time.monotonic() + wrapper.timeout(limit)
            while not cond():
                self.assertIsNone(d.poll(), f"keymgrd exited while waiting for {what}")
                self.assertLess(time.monotonic(), end, f"{what}: not within {limit} s")
                time.sleep(0.2)
        try:
            wait("keymgrd's signing token", lambda: log_has("event=signing-token env=fo "
                                                           "result=ok"))
            p = sign()
            self.assertEqual(p.returncode, 0, p.stderr)
            kid = jwt.get_unverified_header(p.stdout.strip())["kid"]

            self.m.kill_server()
            p = sign()
            self.assertEqual(p.returncode, 1, "signed with the HSM away")
            self.assertIn("CKR_DEVICE_ERROR", p.stderr)
            # keymgrd tries to reopen the token while the HSM is away, and fails.
            wait("a failed reopen", lambda: log_has("event=signing-token env=fo "
                                                    "result=failed"))
            self.m._serve()
            ok = []
            wait("a signature after the HSM came back",
                 lambda: ok.append(sign()) or ok[-1].returncode == 0)
            token = ok[-1].stdout.strip()
            self.assertEqual(jwt.get_unverified_header(token)["kid"], kid)
            jwks = json.loads(self.keymgr("jwks", "fo/fo", config=config).stdout)
            key = jwt.PyJWK(jwks["keys"][0], algorithm="ES256").key
            self.assertEqual(jwt.decode(token, key, algorithms=["ES256"], audience=AUDIENCE,
                                        issuer=ISSUER)["sub"], "alice")
        finally:
            d.terminate()
            d.wait(timeout=wrapper.timeout(60))
            report = wrapper.check(tag)
            self.assertFalse(report, f"keymgrd: {report}")
        self.assertEqual(d.returncode, 0, log_text()[-2000:])

    def long_label(self):
        """A token that takes labels of at most 40 bytes (yubihsm: CKR_ATTRIBUTE_VALUE_INVALID
        beyond them): a key set whose label "keymgr:ENV/KEYSET" is longer is generated with a
        fitted label, found by its CKA_ID, and signs."""
        name = "k-" + "long" * 11   # "keymgr:hsm/" + 46 bytes
        with open(self.config) as f:
            text = f.read()
        text = text.replace(
            "    keysets:\n",
            f'    keysets:\n      {name}: {{ issuer: "{ISSUER}", audiences: [ {AUDIENCE} ] }}\n', 1)
        text = text.replace("purposes: [ ", f"purposes: [ {name}, ", 1)
        config = os.path.join(self.dir, "long.yaml")
        with open(config, "w") as f:
            f.write(text)
        os.chmod(config, 0o600)
        self.keymgr("keyset", "create", "hsm/" + name, "--alg", "ES256", "--owner", "hsm-suite",
                    "--purpose", name, config=config)
        keys = [k for k in self.json("key", "list", "hsm/" + name, config=config)
                if k["state"] == "active"]
        self.assertEqual(len(keys), 1, keys)
        self.assertIn(keys[0]["token"]["cka_id"], self.token_keys())
        token = self.keymgr("sign", "hsm/" + name, "--claims", json.dumps(CLAIMS), "--ttl", "10m",
                            config=config).stdout.strip()
        self.assertEqual(jwt.get_unverified_header(token)["kid"], keys[0]["kid"])

    def short_id_recalled(self):
        """A token that keeps 2 bytes of a CKA_ID (yubihsm) is learned once: the first
        generation in a new store makes a pair with a 20-byte id, finds it cut and makes
        another; the store keeps what was learned, so a second keymgr process generates one
        pair at once (C_GenerateKeyPair counted in the fault module's call log)."""
        config = self.write_config("fresh.yaml", self.m.module)
        with open(config) as f:
            text = f.read().replace("  hsm:\n", "  fresh:\n", 1).replace("/hsm.db", "/fresh.db")
        with open(config, "w") as f:
            f.write(text)
        calls = os.path.join(self.dir, "fresh.calls")

        def pairs_made(*args):
            open(calls, "w").close()
            self.keymgr(*args, config=config, env={"KEYMGR_P11FAULT_CALLS": calls})
            with open(calls) as f:
                return [ln for ln in f if ln.startswith("C_GenerateKeyPair ")]

        made = pairs_made("keyset", "create", "fresh/k-es256", "--alg", "ES256", "--owner",
                          "hsm-suite", "--purpose", "k-es256")
        self.assertEqual(len(made), 2, f"the first process learns the cut: {made}")
        made = pairs_made("rotate", "fresh/k-es256", "--now", "--force")
        self.assertEqual(len(made), 1, f"a second process learned the cut again: {made}")
        keys = self.json("key", "list", "fresh/k-es256", config=config)
        self.assertEqual(len(keys), 3, keys)   # the abandoned 20-byte intent and two keys
        for k in keys:
            if k["kid"]:
                self.assertEqual(len(k["token"]["cka_id"]), 4, k)

    def assigned_ids_recalled(self):
        """A token that assigns CKA_IDs itself (kmsp11) is learned once: the first generation
        in a new store records an intent with keymgr's id, which the token refuses (the
        intent is abandoned), then generates without one; the store keeps what was learned,
        so a second keymgr process generates without an id at once and abandons nothing."""
        config = self.write_config("fresh.yaml", self.m.module)
        with open(config) as f:
            text = f.read().replace("  hsm:\n", "  fresh:\n", 1).replace("/hsm.db", "/fresh.db")
        with open(config, "w") as f:
            f.write(text)

        def abandoned():
            return [k for k in self.json("key", "list", "fresh/k-es256", config=config)
                    if not k["kid"]]
        self.keymgr("keyset", "create", "fresh/k-es256", "--alg", "ES256", "--owner",
                    "hsm-suite", "--purpose", "k-es256", config=config)
        self.assertEqual(len(abandoned()), 1, "the first process learns the assigned ids")
        self.keymgr("rotate", "fresh/k-es256", "--now", "--force", config=config)
        self.assertEqual(len(abandoned()), 1, "a second process learned the assigned ids again")
        keys = [k for k in self.json("key", "list", "fresh/k-es256", config=config) if k["kid"]]
        self.assertEqual(len(keys), 2, keys)
        for k in keys:
            self.assertFalse(k["token"]["cka_id"].startswith("4b4d4752"), k)   # not "KMGR"

    def short_id_stray(self):
        """On a token that cuts CKA_IDs (yubihsm), the first generation in a store gets a pair
        whose id is the cut of a "KMGR" id (4b4d); keymgr killed before it destroys that
        pair leaves a keymgr pair that no record knows. Reconcile reports it as keymgr's
        stray (quarantine), and only it: the pairs of other environments on the token are
        not this environment's, and foreign ones stay foreign."""
        config = self.write_config("stray.yaml", self.m.module)
        with open(config) as f:
            text = f.read().replace("  hsm:\n", "  stray:\n", 1).replace("/hsm.db", "/stray.db")
        with open(config, "w") as f:
            f.write(text)
        p = self.keymgr("keyset", "create", "stray/k-es256", "--alg", "ES256", "--owner",
                        "hsm-suite", "--purpose", "k-es256", config=config, ok=False,
                        env={"KEYMGR_P11FAULT": "C_DestroyObject:KILL"})
        self.assertEqual(p.returncode, -9, f"not killed: {p.returncode} {p.stderr}")
        keys = self.token_keys()
        self.assertIn("4b4d", keys, "no pair with the cut id was left")
        p = self.keymgr("reconcile", "stray", "--json", config=config, ok=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        found = json.loads(p.stdout)["findings"]
        strays = [f for f in found if f["action"] == "quarantine"]
        self.assertEqual([f["cka_id"] for f in strays], ["4b4d"], found)
        self.assertIn("keymgr:stray/k-es256", strays[0]["detail"])
        # still there: a stray is reported on every run, never deleted
        self.assertIn("4b4d", self.token_keys())

    def test_zzz_identity_marker(self):
        """The token identity marker (keymgr token init --env): a data object, or a marker
        key where the token keeps no data objects (NSS); another environment configured with
        the same token (same label, serial and PIN: what NSS and tpm2 tokens all look like)
        is refused by the environment wall, and cannot re-mark the token. Runs last: the
        marker stays in the token."""
        other = self.write_config("other.yaml", self.m.module)
        with open(other) as f:
            text = f.read().replace("  hsm:\n", "  other:\n", 1).replace("/hsm.db", "/other.db")
        with open(other, "w") as f:
            f.write(text)
        # before the marker, both environments may open the token
        self.keymgr("token", "info", "--env", "other", config=other)
        first = self.json("token", "init", "--env", "hsm")
        self.assertEqual(first, {"env": "hsm", "marker_created": True})
        again = self.json("token", "init", "--env", "hsm")
        self.assertEqual(again["marker_created"], False)
        marker = "keymgr-token-identity".encode().hex()
        if MODULE == "nss":
            self.assertIn(marker, self.token_keys(), "NSS: no marker key")
        elif MODULE == "kmsp11":
            # no data objects, no CKA_ID of keymgr's choosing: a key labelled for the env
            labels = [k.get("label") for k in self.token_keys().values()]
            self.assertIn("keymgr-identity-hsm", labels, "kmsp11: no marker key")
            self.assertIn("keymgr-identity", labels, "kmsp11: no marker flag key")
            self.assertNotIn(marker, self.token_keys(), f"{MODULE}: a marker key with its id")
        else:
            # a token that keeps data objects gets one, not a marker key
            self.assertNotIn(marker, self.token_keys(), f"{MODULE}: a marker key")
        p = self.keymgr("token", "info", "--env", "other", config=other, ok=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("is marked for environment 'hsm'", p.stderr)
        p = self.keymgr("token", "init", "--env", "other", config=other, ok=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("is marked for environment 'hsm'", p.stderr)
        # the environment it names still works
        self.keymgr("token", "info", "--env", "hsm")
        self.assertEqual(self.json("token", "init", "--env", "hsm")["marker_created"], False)

    def test_zz_compat_table(self):
        """docs/hsm-compat.md's row for this module says what this run found."""
        with open(COMPAT) as f:
            text = f.read()
        m = re.search(r"^\| `" + MODULE + r"` \|(.*)\|\s*$", text, re.M)
        self.assertIsNotNone(m, f"docs/hsm-compat.md has no row for `{MODULE}`")
        cells = [c.strip() for c in m.group(1).split("|")]
        header = re.search(r"^\| module \|(.*)\|\s*$", text, re.M)
        algs = [c.strip() for c in header.group(1).split("|")]
        self.assertEqual(algs[:len(modules.ALL_ALGS)], list(modules.ALL_ALGS))
        ran = 0
        for alg, cell in zip(algs, cells):
            if alg in RESULTS:
                ran += 1
                self.assertEqual(cell, RESULTS[alg], f"docs/hsm-compat.md, `{MODULE}`, {alg}")
        self.assertGreater(ran, 0)


def add_cases():
    algs = [a for a in modules.ALL_ALGS if a in modules.KINDS[MODULE].algs]
    missing = [a for a in modules.ALL_ALGS if a not in algs]
    if LEAN:
        # one algorithm: the module's quirk where it has one for an algorithm (luna: EdDSA)
        lean = getattr(modules.KINDS[MODULE], "lean_alg", None)
        algs, missing = ([lean] if lean in algs else algs[:1]), missing[:1]
    for alg in algs:
        setattr(HsmTest, f"test_lifecycle_{alg}", lambda self, a=alg: self.lifecycle(a))
    for alg in missing:
        setattr(HsmTest, f"test_refused_{alg}", lambda self, a=alg: self.refused(a))
    if modules.KINDS[MODULE].pin_max:
        HsmTest.test_pin_too_long = HsmTest.pin_too_long
    if getattr(modules.KINDS[MODULE], "ids_assigned", False):
        HsmTest.test_assigned_ids_recalled = HsmTest.assigned_ids_recalled
    elif getattr(modules.KINDS[MODULE], "id_bytes", 20) < 20:
        HsmTest.test_short_id_recalled = HsmTest.short_id_recalled
        HsmTest.test_short_id_stray = HsmTest.short_id_stray
    if getattr(modules.KINDS[MODULE], "label_max", None):
        HsmTest.test_long_label = HsmTest.long_label
    if MODULE == "p11kit":
        # after the lifecycles: its environment shares their token (its keys are not theirs)
        HsmTest.test_zy_failover = HsmTest.failover


def main():
    global KEYMGR, P11FAULT, MODULE, LEAN, KEYMGRD
    if len(sys.argv) < 5:
        print(f"usage: {sys.argv[0]} KEYMGR KEYMGRD P11FAULT MODULE [--lean]", file=sys.stderr)
        sys.exit(2)
    KEYMGR, KEYMGRD, P11FAULT, MODULE = (os.path.abspath(sys.argv[1]),
                                         os.path.abspath(sys.argv[2]),
                                         os.path.abspath(sys.argv[3]), sys.argv[4])
    rest = sys.argv[5:]
    if "--lean" in rest:
        LEAN = True
        rest.remove("--lean")
    modules.P11FAULT = P11FAULT
    add_cases()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2, exit=False)
    r = prog.result
    print(f"\nhsm.{MODULE}: {r.testsRun} cases, {len(r.failures)} failed, {len(r.errors)} "
          f"errors, {len(r.skipped)} skipped; ran {json.dumps(RESULTS)}")
    late = wrapper.sweep()
    if late:
        print(late)
    sys.exit(0 if r.testsRun and r.wasSuccessful() and not late and not r.skipped else 1)


if __name__ == "__main__":
    main()
