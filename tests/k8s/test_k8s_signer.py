# SPDX-License-Identifier: Apache-2.0
"""keymgr-k8s-signer: Kubernetes' external JWT signer (docs/kubernetes.md), driven the way
kube-apiserver drives it, by a Python gRPC client whose stubs are generated at test time from
keymgr/k8s/externaljwt.proto (package v1, and the same file as package v1alpha1).

Real keymgrd, real SoftHSM token and store, the real signer on a Unix socket; every keymgr and
keymgrd process runs under an injected wall clock (libfaketime); nothing sleeps.

flow:       Metadata gives max_token_ttl; FetchKeys gives the key set's JWKS keys as PKIX DER
            (loaded with python3-cryptography) with refresh_hint_seconds = (publish_lead -
            clock_skew) / 2 and the keymgrd clock's data_timestamp; Sign returns a header that
            is exactly {"alg","kid","typ":"JWT"} and a signature; the assembled JWT verifies
            with PyJWT and the fetched key, for each audience of the token; the same over
            v1alpha1.
rotation:   a rotation's published key is in FetchKeys while the old key still signs; after
            the activation Sign uses the new key and FetchKeys still holds the old one, whose
            token still verifies; after retire_retention the old key leaves FetchKeys.
refused:    iss not the key set's, an aud not in its audiences, a lifetime above
            max_token_ttl, a payload that is not base64url JSON, a sub that is no service
            account: INVALID_ARGUMENT naming the rule; a caller the signer does not allow
            (--allow-user): PERMISSION_DENIED; a signer whose user is not among the key set's
            signers: PERMISSION_DENIED from keymgrd (FetchKeys, public, still works);
            `keymgr sign` on such a key set: refused (keymgr adds no claims to them).
malformed:  bytes that are no SignJWTRequest: INVALID_ARGUMENT; a 70 KiB message:
            RESOURCE_EXHAUSTED; an unknown method: UNIMPLEMENTED; garbage instead of HTTP/2:
            the connection is closed; the signer keeps serving after each.
config:     kubernetes: true with max_token_ttl below 10m, or with publish_lead too short for
            publish_lead >= 2 x refresh_hint + clock_skew: refused at load, naming the rule;
            a service-account-token key set with an algorithm kube-apiserver does not take
            (PS256): refused at creation, nothing created; `keymgr policy check` flags
            kubernetes: true on a key set of another class (violation) and a
            service-account-token key set without it (warning).

Usage: /usr/bin/python3 test_k8s_signer.py KEYMGR KEYMGRD SIGNER PROTO_DIR
"""
import base64
import calendar
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "signing"))
from signing_fixture import SignSetup, check, run_tests, wait_for  # noqa: E402
from daemon_fixture import FAKETIME, Clock, Daemon, Failure  # noqa: E402
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER, tests/common: found by daemon_fixture)

import grpc  # noqa: E402
import jwt  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: E402

keymgr, keymgrd, signer_bin, proto_dir = sys.argv[1:5]

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = ["https://kubernetes.default.svc", "vault", "sts.amazonaws.com"]
# P (20m) >= M (5m) + S (1m); Ret (30m) >= T (10m) + M + S; hint = (P - S) / 2 = 570 s
POLICY = {"rotation_period": "30d", "jwks_max_age": "5m", "max_token_ttl": "10m",
          "clock_skew": "1m", "publish_lead": "20m", "retire_retention": "30m",
          "destroy_after": "1d"}
P, RET, HINT = 20 * 60, 30 * 60, (20 * 60 - 60) // 2
T0 = 1_900_000_000 - 1_900_000_000 % 60


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(
        b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def stubs(tmp):
    """v1 and v1alpha1 stubs generated from the signer's own .proto."""
    from grpc_tools import protoc
    out = os.path.join(tmp, "stubs")
    os.makedirs(out)
    with open(os.path.join(proto_dir, "externaljwt.proto")) as f:
        text = f.read()
    inc = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    mods = {}
    for pkg in ("v1", "v1alpha1"):
        d = os.path.join(tmp, pkg)
        os.makedirs(d)
        name = f"externaljwt_{pkg}"
        with open(os.path.join(d, name + ".proto"), "w") as f:
            f.write(text.replace("package v1;", f"package {pkg};"))
        rc = protoc.main(["protoc", f"-I{inc}", f"-I{d}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(d, name + ".proto")])
        check(rc == 0, f"protoc for {pkg}: {rc}")
    sys.path.insert(0, out)
    for pkg in ("v1", "v1alpha1"):
        mods[pkg] = (importlib.import_module(f"externaljwt_{pkg}_pb2"),
                     importlib.import_module(f"externaljwt_{pkg}_pb2_grpc"))
    return mods


class K8sSetup(SignSetup):
    """Key set dev/sa for service-account tokens; root may sign (signers) unless told."""

    def __init__(self, policy=None, signer_users="root", kubernetes="true"):
        self.signer_users = signer_users
        self.kubernetes = kubernetes
        super().__init__(keymgr, keymgrd, keysets=("sa",), policy=policy or POLICY,
                         signers={"sa": "{ users: [ root ] }"})

    def config_text(self, policy=None, keyset_policy=None, extra_daemon=None, signers=None):
        out = []
        for line in super().config_text(policy, keyset_policy, extra_daemon,
                                        signers).splitlines():
            s = line.strip()
            if s.startswith("issuer:"):
                line = f"        issuer: {ISSUER}"
            elif s.startswith("audiences:"):
                line = f"        audiences: [ {', '.join(AUDIENCES)} ]"
            elif s.startswith("signers:"):
                line = f"        signers: {{ users: [ {self.signer_users} ] }}"
                out.append(f"        kubernetes: {self.kubernetes}")
            out.append(line)
        return "\n".join(out) + "\n"

    def create(self):
        self.run("keyset", "create", "dev/sa", "--no-key", "--alg", "ES256", "--owner",
                 "platform", "--purpose", "service-account-token")


class Signer:
    def __init__(self, s, tmp, *extra):
        self.path = os.path.join(tmp, f"signer-{uuid.uuid4().hex[:6]}.sock")
        self.log_path = self.path + ".log"
        self.log = open(self.log_path, "w")
        # under `meson test --setup memcheck` the signer runs under valgrind too
        argv, self.tag = wrapper.wrap([signer_bin, "--keyset", "dev/sa", "--listen",
                                       self.path, "--control-socket", s.socket, *extra])
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(self.path) or self.proc.poll() is not None,
                 "the signer's socket", timeout=wrapper.timeout(60))
        check(self.proc.poll() is None, f"signer exited: {self.text()}")
        self.channel = grpc.insecure_channel("unix:" + self.path)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.channel.close()
        self.proc.terminate()
        rc = self.proc.wait(timeout=wrapper.timeout(30))
        self.log.close()
        check(rc == 0, f"signer exit status {rc}: {self.text()[-2000:]}")
        report = wrapper.check(self.tag)
        check(not report, f"keymgr-k8s-signer: {wrapper.WRAPPER[:1]} found errors:\n{report}")
        check(not os.path.exists(self.path), "the signer left its socket behind")


def payload(now, aud=None, iss=ISSUER, life=600, **extra):
    p = {"aud": aud or AUDIENCES[:2], "exp": now + life, "iat": now, "iss": iss,
         "jti": str(uuid.uuid4()), "kubernetes.io": {"namespace": "default",
         "serviceaccount": {"name": "builder", "uid": str(uuid.uuid4())}}, "nbf": now,
         "sub": "system:serviceaccount:default:builder"}
    p.update(extra)
    return p


def call_sign(mods, ch, claims, pkg="v1"):
    pb2, grpc_mod = mods[pkg]
    r = grpc_mod.ExternalJWTSignerStub(ch).Sign(pb2.SignJWTRequest(claims=claims), timeout=30)
    return f"{r.header}.{claims}.{r.signature}"


def fetch(mods, ch, pkg="v1"):
    pb2, grpc_mod = mods[pkg]
    return grpc_mod.ExternalJWTSignerStub(ch).FetchKeys(pb2.FetchKeysRequest(), timeout=30)


def keys_of(resp):
    out = {}
    for k in resp.keys:
        check(not k.exclude_from_oidc_discovery, f"key {k.key_id} excluded from discovery")
        out[k.key_id] = load_der_public_key(k.key)
    return out


def verify(token, keys, aud):
    h = jwt.get_unverified_header(token)
    check(h["kid"] in keys, f"kid {h['kid']} not in FetchKeys {list(keys)}")
    # the injected clock is years ahead of this process's: keymgr checked the times
    return jwt.decode(token, keys[h["kid"]], algorithms=["ES256"], audience=aud,
                      issuer=ISSUER, options={"verify_exp": False, "verify_iat": False,
                                              "verify_nbf": False})


def expect_error(fn, code, *words):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code}, got {e.code()}: {e.details()}")
        for w in words:
            check(w in (e.details() or ""), f"'{w}' not in {e.details()!r}")
        return e
    raise Failure(f"expected {code}, the call succeeded")


def active_kid(s):
    return [k["kid"] for k in s.keys("dev/sa") if k["state"] == "active"][0]


def test_flow_rotation_refusals(mods):
    s = K8sSetup()
    clock = Clock(s, T0)
    tmp = tempfile.mkdtemp(prefix="k8s-")
    d = sg = None
    try:
        s.create()
        s.run("rotate", "dev/sa")
        first = active_kid(s)
        d = Daemon(s, verbose=False)
        d.wait_event("signing-key", keyset="sa", result="ok")
        sg = Signer(s, tmp)
        ch = sg.channel
        for pkg in ("v1", "v1alpha1"):
            pb2, grpc_mod = mods[pkg]
            md = grpc_mod.ExternalJWTSignerStub(ch).Metadata(pb2.MetadataRequest(), timeout=30)
            check(md.max_token_expiration_seconds == 600, f"Metadata over {pkg}: {md}")
            fk = fetch(mods, ch, pkg)
            check([k.key_id for k in fk.keys] == [first], f"FetchKeys over {pkg}: {fk.keys}")
            check(fk.refresh_hint_seconds == HINT, f"refresh hint {fk.refresh_hint_seconds}")
            check(T0 <= fk.data_timestamp.seconds <= T0 + 1,
                  f"data_timestamp {fk.data_timestamp.seconds} is not keymgrd's clock")
        keys = keys_of(fetch(mods, ch))
        # the served JWKS and FetchKeys hold the same key
        jwk = d.jwks("/dev/sa/jwks.json")[0]["keys"]
        check([k["kid"] for k in jwk] == [first], f"JWKS {jwk}")

        tokens = {}
        for pkg in ("v1", "v1alpha1"):
            p = payload(T0)
            claims = b64(p)
            tok = call_sign(mods, ch, claims, pkg)
            head = json.loads(unb64(tok.split(".")[0]))
            check(head == {"alg": "ES256", "kid": first, "typ": "JWT"},
                  f"header over {pkg}: {head}")
            check(tok.split(".")[1] == claims, "the payload was changed")
            for aud in p["aud"]:
                got = verify(tok, keys, aud)
                check(got == p, f"claims {got} differ from the payload {p}")
            tokens[pkg] = tok
        # every audience of the key set may be asked for at once
        verify(call_sign(mods, ch, b64(payload(T0, aud=AUDIENCES))), keys, "sts.amazonaws.com")

        # refusals
        bad = [(payload(T0, iss="https://evil.example"), "iss"),
               (payload(T0, aud=["vault", "not-ours"]), "not-ours"),
               (payload(T0, life=601), "max_token_ttl"),
               (payload(T0, sub="alice"), "service account"),
               (dict(payload(T0), exp="soon"), "exp")]
        for p, word in bad:
            expect_error(lambda: call_sign(mods, ch, b64(p)), grpc.StatusCode.INVALID_ARGUMENT,
                         word)
        expect_error(lambda: call_sign(mods, ch, "not base64!"),
                     grpc.StatusCode.INVALID_ARGUMENT, "base64url")
        expect_error(lambda: call_sign(mods, ch, b64([1, 2])),
                     grpc.StatusCode.INVALID_ARGUMENT, "JSON object")
        expect_error(lambda: call_sign(mods, ch, ""), grpc.StatusCode.INVALID_ARGUMENT,
                     "empty")
        # keymgr sign does not sign this class
        p = s.run("sign", "dev/sa", "--claims", json.dumps(payload(T0)), "--via", "token",
                  expect=None)
        check(p.returncode != 0 and "service-account-token" in p.stderr, p.stderr)

        # malformed and oversize messages, unknown methods, garbage: errors, no crash
        raw = ch.unary_unary("/v1.ExternalJWTSigner/Sign")
        expect_error(lambda: raw(b"\xff\xff\xff\xff", timeout=30),
                     grpc.StatusCode.INVALID_ARGUMENT, "SignJWTRequest")
        expect_error(lambda: raw(b"\x0a" + b"\xff" * 5, timeout=30),
                     grpc.StatusCode.INVALID_ARGUMENT)
        expect_error(lambda: raw(b"\x0a\x80\xa8\x04" + b"a" * 70000, timeout=30),
                     grpc.StatusCode.RESOURCE_EXHAUSTED, "longer than")
        expect_error(lambda: ch.unary_unary("/v1.ExternalJWTSigner/Nope")(b"", timeout=30),
                     grpc.StatusCode.UNIMPLEMENTED, "unknown method")
        expect_error(lambda: ch.unary_unary("/v2.Other/Sign")(b"", timeout=30),
                     grpc.StatusCode.UNIMPLEMENTED)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(sg.path)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        check(sg.proc.poll() is None, "the signer died on garbage")
        verify(call_sign(mods, ch, b64(payload(T0))), keys, "vault")

        # rotation: the published key is fetched before it signs
        clock.set(T0 + 100)
        nxt = json.loads(s.run("rotate", "dev/sa", "--json").stdout)
        s.run("tick")
        ids = [k.key_id for k in fetch(mods, ch).keys]
        check(sorted(ids) == sorted([first, nxt["kid"]]), f"FetchKeys after publish: {ids}")
        tok = call_sign(mods, ch, b64(payload(T0 + 100)))
        check(jwt.get_unverified_header(tok)["kid"] == first, "the published key signed")
        # the time rotate printed (publication may be recorded a second after the clock)
        t1 = calendar.timegm(time.strptime(nxt["activates_at"], "%Y-%m-%dT%H:%M:%SZ"))
        check(T0 + 100 + P <= t1 <= T0 + 101 + P, f"activation at {t1}: {nxt}")
        clock.set(t1)
        s.run("tick")
        wait_for(lambda: jwt.get_unverified_header(call_sign(mods, ch, b64(payload(t1))))[
            "kid"] == nxt["kid"], "the new key signing through the signer")
        keys = keys_of(fetch(mods, ch))
        check(sorted(keys) == sorted([first, nxt["kid"]]), f"after activation: {list(keys)}")
        verify(tokens["v1"], keys, "vault")          # the retired key's tokens still verify
        verify(call_sign(mods, ch, b64(payload(t1))), keys, "vault")
        # after retire_retention the old key leaves
        clock.set(t1 + RET + 5)
        s.run("tick")
        wait_for(lambda: [k.key_id for k in fetch(mods, ch).keys] == [nxt["kid"]],
                 "the retired key gone from FetchKeys after retire_retention")

        # a caller the signer does not allow
        other = Signer(s, tmp, "--allow-user", "nobody")
        try:
            expect_error(lambda: fetch(mods, other.channel), grpc.StatusCode.PERMISSION_DENIED,
                         "may not call")
        finally:
            other.stop()
        # a signer whose user keymgrd does not list among the signers
        s.signer_users = "nobody"
        s.write_config()
        s.run("reload")
        expect_error(lambda: call_sign(mods, ch, b64(payload(t1 + RET + 5))),
                     grpc.StatusCode.PERMISSION_DENIED, "may not sign")
        check(len(fetch(mods, ch).keys) == 1, "FetchKeys (public) refused")
        check(d.events("sign-denied", keyset="sa"), "keymgrd did not log the denial")
        sg.stop()
        sg = None
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if sg is not None and sg.proc.poll() is None:
            sg.proc.kill()
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_config_refused():
    s = K8sSetup()
    try:
        p = s.run("keyset", "create", "dev/sa", "--no-key", "--alg", "PS256", "--owner", "o",
                  "--purpose", "service-account-token", expect=None)
        check(p.returncode != 0 and "service-account-token needs RS256, ES256, ES384 or ES512"
              in p.stderr, f"PS256 service-account key set: {p.returncode} {p.stderr}")
        check(json.loads(s.run("keyset", "list", "--json").stdout) == [],
              "a refused key set was created")
        # keymgr policy check: kubernetes: true on a key set of another class
        s.run("keyset", "create", "dev/sa", "--no-key", "--alg", "ES256", "--owner", "o",
              "--purpose", "access-token")
        p = s.run("policy", "check", "dev", expect=None)
        check(p.returncode != 0 and "kubernetes: true, but the key set signs access-token"
              in p.stdout + p.stderr, f"policy check: {p.returncode} {p.stdout}{p.stderr}")
    finally:
        s.close()
    s = K8sSetup(kubernetes="false")
    try:
        s.create()
        p = s.run("policy", "check", "dev", expect=None)
        check("not kubernetes: true in the configuration" in p.stdout + p.stderr,
              f"policy check: {p.returncode} {p.stdout}{p.stderr}")
    finally:
        s.close()
    for policy, words in ((dict(POLICY, max_token_ttl="5m"), "max_token_ttl >= 10m"),
                          (dict(POLICY, publish_lead="61s", clock_skew="1m",
                                jwks_max_age="1s"), "refresh_hint_seconds")):
        s = K8sSetup(policy=policy)
        try:
            p = s.run("policy", "check", "dev", expect=None)
            check(p.returncode != 0 and "kubernetes: true" in p.stderr and words in p.stderr,
                  f"{policy}: {p.returncode} {p.stderr[-400:]}")
        finally:
            s.close()


if __name__ == "__main__":
    if not os.path.exists(FAKETIME):
        print(f"FAIL {FAKETIME} is missing: scripts/deps installs libfaketime")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="k8s-stubs-")
    try:
        mods = stubs(tmp)
        sys.exit(run_tests([
            ("k8s.flow-rotation-refusals", lambda: test_flow_rotation_refusals(mods)),
            ("k8s.config-refused", test_config_refused),
        ]))
    except Failure as e:
        print(f"FAIL {e}")
        sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
