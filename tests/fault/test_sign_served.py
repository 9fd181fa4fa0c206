# SPDX-License-Identifier: Apache-2.0
"""keymgrd signs with a key only once the JWKS it serves holds that key (keymgr/daemon/
signer.c, hold_until_served): a verifier never gets a token whose key keymgrd has not
published.

The case: a pass of keymgrd bootstraps two new key sets, `new` then `zzz`. `new`'s first key
is generated and activated at once (there is nothing to rotate from); the pass publishes the
documents after its last key set. While `zzz`'s key generation is held inside the token (the
fault module's HOLD rule), issuers ask keymgrd to sign for `new`. Every reply must be either
a refusal that says the key is not served yet (or that there is no active key yet), or a
token whose kid the JWKS served right after holds. (Before, the signer took `new`'s key as
soon as it was active, and signed with it while `/dev/new/jwks.json` did not have it.) Once
the pass is done, `new` signs, and its kid is served.

The pass is started by `keymgr tick` with the store check (poll_interval) set to an hour, so
that both key sets are created before keymgrd sees either.

A token failure while keymgrd signs (the fault module returns CKR_DEVICE_ERROR from
C_Sign once) is answered with code token_error, logged as a failed signature (not a
refusal), and keymgrd signs again once it has reopened the token.

While that pass holds keymgrd's main thread, a control request without an op or with an
unknown op is still refused at once (the connection's thread answers it).

Just after start, while keymgrd's first login to the token is held (the fault module's HOLD
rule on C_Login), a sign request from a listed signer is answered busy ("keymgrd is
starting"), not denied as if the signer were not listed, nor "not served"; nothing is
audited as a denial. Once the login goes through, the same request signs.

A connection that signs often has the next C_SignInit run ahead (pkcs11/prepare.c): the
fault module's call log shows it after the reply, and the next request on that connection
reaches the token as a C_Sign alone. A connection that signs once is not prepared for.

A token out of sessions (the fault module's C_OpenSession:LIMIT, CKR_SESSION_COUNT as a
YubiHSM 2 answers past 16): when the signing token re-opens with 3 places left, keymgrd signs
with the 2 signing sessions that fit beside its admin session (keymgr_signing_sessions 2 of
keymgr_signing_sessions_wanted 4), and once the token has room again the pool grows back by
one session per pass (2, 3, 4), not by a re-open.

Usage: test_sign_served.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "signing"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, connect,  # noqa: E402
                             frame, jwks_keys, read_frame, run_tests, verify, wait_for)
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER)

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
ROOT = "{ users: [ root ] }"


class ServedSetup(SignSetup):
    """Three key sets with root as signer, no scheduled rotation, the store checked hourly,
    the token behind the fault module with its rules in a file (empty: no fault yet)."""

    def __init__(self):
        self.rules = None
        super().__init__(KEYMGR, KEYMGRD, signers={"api": ROOT, "new": ROOT, "zzz": ROOT},
                         keysets=("api", "new", "zzz"), policy={"rotation_period": "10m"})
        self.rules = os.path.join(self.dir, "p11fault.rules")
        open(self.rules, "w").close()
        self.env["KEYMGR_P11FAULT_MODULE"] = self.module
        self.env["KEYMGR_P11FAULT_FILE"] = self.rules
        self.env["KEYMGR_P11FAULT_LOG"] = os.path.join(self.dir, "faults.log")
        self.env["KEYMGR_P11FAULT_CALLS"] = os.path.join(self.dir, "calls.log")
        self.module = FAULT_MODULE
        self.write_config()

    def config_text(self, *args, **kw):
        return super().config_text(*args, **kw).replace("  poll_interval: 1\n",
                                                        "  poll_interval: 3600\n")


def sign(s, keyset):
    return call(s.socket, {"op": "sign", "keyset": keyset, "claims": CLAIMS, "ttl": "2s"})


def wait_signing(s, d):
    """Waits until keymgrd d has bootstrapped dev/api and signs with it."""
    d.wait_event("action", action="activate", keyset="api")
    wait_for(lambda: sign(s, "dev/api").get("ok"), "keymgrd signing for dev/api",
             timeout=wrapper.timeout(60))


def served_kids(d, path):
    st, _, body = d.http("GET", path)
    return [k["kid"] for k in json.loads(body)["keys"]] if st == 200 else []


def kid_of(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def test_no_token_before_its_key_is_served():
    s = ServedSetup()
    d = None
    gate = os.path.join(s.dir, "gate")
    tick = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)   # assigned first: the finally stops it
        wait_signing(s, d)
        # Both key sets exist before keymgrd looks (no wake-up, hourly store check).
        s.keyset_create("dev/new")
        s.keyset_create("dev/zzz")
        with open(s.rules, "w") as f:     # new's generation passes, zzz's is held
            f.write(f"C_GenerateKeyPair:HOLD={gate}:after=1\n")
        argv, _ = wrapper.wrap([s.keymgr_bin, "-c", s.config, "tick"])
        tick = subprocess.Popen(argv, env=s.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        faults = s.env["KEYMGR_P11FAULT_LOG"]

        def held():
            return os.path.exists(faults) and "C_GenerateKeyPair HOLD" in open(faults).read()
        wait_for(held, "zzz's generation held", timeout=wrapper.timeout(60), step=0.02)
        check(d.events("action", action="activate", keyset="new"),
              "new's first key was not activated before zzz's generation")

        # While the pass is held: refused as not served yet, or signed with a served key.
        refusals = signed = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            r = sign(s, "dev/new")
            if r.get("ok"):
                kid = kid_of(r["jwt"])
                check(kid in served_kids(d, "/dev/new/jwks.json"),
                      f"token signed by {kid}, which /dev/new/jwks.json does not serve")
                signed += 1
            else:
                check(r.get("code") in ("busy", "no_active_key"),
                      f"unexpected refusal: {r}")
                if r.get("code") == "busy":
                    check("not in the JWKS keymgrd serves yet" in r.get("error", ""),
                          f"busy without the reason: {r}")
                refusals += 1
        check(refusals + signed > 0, "no request answered")

        # The main thread is inside the pass: a request it would have to answer waits, but
        # one without an op, or with an unknown op, is refused at once, and logged.
        for req, what in (({"op": "bogus"}, "unknown op 'bogus'"), ({"nop": 1}, 'missing "op"')):
            r = call(s.socket, req, timeout=wrapper.timeout(10))
            check(not r.get("ok") and what in r.get("error", "") and
                  r.get("code") == "bad_request", f"{req} during a pass: {r}")
        wait_for(lambda: d.events("control", op="bogus", result="refused"),
                 "the unknown op's refusal logged", timeout=wrapper.timeout(10))

        open(gate, "w").close()
        out, err = tick.communicate(timeout=wrapper.timeout(120))
        check(tick.returncode == 0, f"tick: exit {tick.returncode} {err}")
        r = sign(s, "dev/new")
        check(r.get("ok"), f"new does not sign after the pass: {r}")
        kid = kid_of(r["jwt"])
        check(kid in served_kids(d, "/dev/new/jwks.json"), f"{kid} not served after the pass")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        open(gate, "a").close()
        if tick is not None and tick.returncode is None:
            try:
                tick.communicate(timeout=wrapper.timeout(120))
            except subprocess.TimeoutExpired:
                tick.kill()
                tick.communicate()
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


@contextlib.contextmanager
def signing_for_api():
    """A ServedSetup with key set dev/api, and keymgrd signing for it; keymgrd must exit 0
    when the block is done. Stopped and removed afterwards in any case."""
    s = ServedSetup()
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)   # assigned first: the finally stops it
        wait_signing(s, d)
        yield s, d
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


def device_errors(s):
    """How many C_Sign calls the fault module failed with CKR_DEVICE_ERROR (0x30)."""
    return sum(1 for ln in signing_calls(s) if ln.startswith("C_Sign rv=0x30 "))


def test_token_failure_is_a_token_error():
    with signing_for_api() as (s, d):
        # One failure (count=1). Another C_Sign of keymgrd's own (an audit checkpoint's, a
        # new key's test signature) may take it first, which the call log shows: then the
        # failure is armed again once keymgrd signs again. A signature that succeeded while
        # no C_Sign failed at all fails the test.
        for attempt in range(5):
            before = device_errors(s)
            with open(s.rules, "w") as f:
                # other text each time (the module reloads, and counts anew, on a change)
                f.write("C_Sign:CKR_DEVICE_ERROR:count=1" + "\n" * (attempt + 1))
            r = sign(s, "dev/api")
            if not (r.get("ok") and device_errors(s) > before):
                break
            print("     the one failure was taken by another signature: again", flush=True)
            wait_for(lambda: sign(s, "dev/api").get("ok"), "keymgrd signing again",
                     timeout=wrapper.timeout(60))
        check(not r.get("ok") and r.get("code") == "token_error",
              f"a device error while signing: {r}; the last signing calls: "
              f"{signing_calls(s)[-6:]}")
        check(d.events("sign", keyset="api", result="failed"),
              "the token failure was not logged as a failed signature")
        check(not d.events("sign", keyset="api", result="refused"),
              "the token failure was logged as a refusal")
        wait_for(lambda: sign(s, "dev/api").get("ok"), "keymgrd signing again",
                 timeout=wrapper.timeout(60))


def signing_calls(s):
    """The C_SignInit and C_Sign lines of the fault module's call log, in order."""
    with open(s.env["KEYMGR_P11FAULT_CALLS"]) as f:
        return [ln for ln in f if ln.startswith(("C_SignInit ", "C_Sign "))]


def test_busy_connection_is_prepared_for():
    with signing_for_api() as (s, d):
        # One request per connection: nothing runs after the reply.
        check(sign(s, "dev/api").get("ok"), "a one-shot request was refused")
        time.sleep(0.5)
        last = signing_calls(s)[-1]
        check(last.startswith("C_Sign rv=0x0"),
              f"a C_SignInit ran after a one-shot connection's reply: {last}")

        req = {"op": "sign", "keyset": "dev/api", "claims": CLAIMS, "ttl": "2s"}
        conn = connect(s.socket)
        try:
            tokens = []
            for _ in range(3):
                conn.sendall(frame(req))
                r = read_frame(conn)
                check(r.get("ok"), f"sign refused: {r}")
                tokens.append(r["jwt"])
            # Signing often: after the third reply the next C_SignInit runs ahead.
            wait_for(lambda: signing_calls(s)[-1].startswith("C_SignInit rv=0x0"),
                     "the next C_SignInit run after the reply", timeout=wrapper.timeout(10),
                     step=0.02)
            before = len(signing_calls(s))
            conn.sendall(frame(req))
            r = read_frame(conn)
            check(r.get("ok"), f"sign refused: {r}")
            tokens.append(r["jwt"])
            first = signing_calls(s)[before]
            check(first.startswith("C_Sign rv=0x0"),
                  f"the prepared request ran {first.strip()} first, not C_Sign")
        finally:
            conn.close()
        keys = jwks_keys(d)
        for t in tokens:
            verify(t, keys, check_time=False)
        check(len({kid_of(t) for t in tokens}) == 1, "the key changed without a rotation")


def test_busy_while_starting():
    s = ServedSetup()
    d = None
    gate = os.path.join(s.dir, "gate")
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        with open(s.rules, "w") as f:
            f.write(f"C_Login:HOLD={gate}\n")
        d = Daemon(s, verbose=False)   # assigned first: the finally stops it
        log = s.env["KEYMGR_P11FAULT_LOG"]
        wait_for(lambda: os.path.exists(log) and "C_Login HOLD" in open(log).read(),
                 "keymgrd's first login held", timeout=wrapper.timeout(60))
        r = sign(s, "dev/api")
        check(not r.get("ok") and r.get("code") == "busy" and "starting" in r.get("error", ""),
              f"a listed signer's request while keymgrd starts: {r}")
        open(gate, "w").close()
        with open(s.rules, "w") as f:
            f.write("")
        wait_for(lambda: sign(s, "dev/api").get("ok"), "keymgrd signing once started",
                 timeout=wrapper.timeout(60))
        check(not d.events("sign-denied"), "a request during the start was logged as denied")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if not os.path.exists(gate):
            open(gate, "w").close()
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


def signing_sessions(s, d):
    """(open, wanted) signing sessions of environment dev, from /metrics after a pass (a
    pass renders the metrics before it grows the pool)."""
    s.run("tick", expect=None)
    m = d.metrics()
    got = [re.search(r'^%s\{env="dev"\} (\d+)$' % name, m, re.M)
           for name in ("keymgr_signing_sessions", "keymgr_signing_sessions_wanted")]
    check(all(got), f"no signing session metrics:\n{m}")
    return int(got[0].group(1)), int(got[1].group(1))


def test_pool_shrinks_and_grows_back():
    with signing_for_api() as (s, d):
        got = signing_sessions(s, d)
        check(got == (4, 4), f"at start: {got}")
        # keymgrd holds 10 sessions: the scheduler's token's 5 and the signing token's 5
        # (admin and 4 each). A signing session is lost and 8 places are left: the signing
        # token's re-open keeps its admin session and 2 signing sessions, and the signature
        # is made again on one of them (the client sees no error).
        with open(s.rules, "w") as f:
            f.write("C_OpenSession:LIMIT=8\nC_Sign:CKR_SESSION_HANDLE_INVALID:count=1\n")
        r = sign(s, "dev/api")
        check(r.get("ok"), f"the signature through a lost session was not made again: {r}")
        got = signing_sessions(s, d)
        check(got == (2, 4), f"after the re-open with 8 places: {got}")
        # Room again: each pass opens one more signing session (the metrics of a pass are
        # rendered before it does): 2, 3, then 4, not a re-open of the whole pool.
        with open(s.rules, "w") as f:
            f.write("")
        seen = [signing_sessions(s, d)[0]]
        wait_for(lambda: seen.append(signing_sessions(s, d)[0]) or seen[-1] == 4,
                 "the signing pool back at 4", timeout=wrapper.timeout(60))
        check(seen == [2, 3, 4], f"signing sessions after each pass: {seen}")
        check(sign(s, "dev/api").get("ok"), "keymgrd signing with the full pool")


class IdleSetup(ServedSetup):
    """ServedSetup with token.keepalive: 1 and the fault module's clock in a file."""

    def __init__(self):
        super().__init__()
        self.clock = os.path.join(self.dir, "p11fault.clock")
        self.set_clock(0)
        self.env["KEYMGR_P11FAULT_CLOCK"] = self.clock

    def set_clock(self, ms):
        with open(self.clock + ".tmp", "w") as f:
            f.write(f"{ms}\n")
        os.replace(self.clock + ".tmp", self.clock)

    def config_text(self, *args, **kw):
        return super().config_text(*args, **kw).replace("      pin: file:",
                                                        "      keepalive: 1\n      pin: file:")


def calls_since(s, mark):
    with open(s.env["KEYMGR_P11FAULT_CALLS"]) as f:
        return f.readlines()[mark:]


def test_idle_sessions_kept_warm():
    """A token that closes sessions idle for more than a minute (the fault module's IDLECLOSE,
    on its own clock, which the test moves: nothing sleeps through a minute). keymgrd's pass
    asks each signing session idle for token.keepalive (1 s here) for its info, so the
    signature after the idle period finds its session open: no re-open, no error."""
    s = IdleSetup()
    d = None
    try:
        with open(s.rules, "w") as f:
            f.write("*:IDLECLOSE=60000\n")
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)   # assigned first: the finally stops it
        wait_signing(s, d)
        mark = len(calls_since(s, 0))
        check(sign(s, "dev/api").get("ok"), "keymgrd signing at clock 0")
        used = [re.search(r"session=(\d+)", ln).group(1) for ln in calls_since(s, mark)
                if ln.startswith("C_Sign rv=0x0 ")]
        check(used, "no C_Sign in the call log")
        s.set_clock(50000)

        def kept_alive():
            s.run("tick", expect=None)    # a pass
            return any(ln.split() == ["C_GetSessionInfo", "rv=0x0", f"session={used[-1]}"]
                       for ln in calls_since(s, mark))
        try:
            wait_for(kept_alive, "a keep-alive call on the signing session",
                     timeout=wrapper.timeout(60))
        except Exception:
            print(f"signing session {used[-1]}; calls since the signature:\n"
                  + "".join(calls_since(s, mark)[-60:]), file=sys.stderr)
            raise
        s.set_clock(100000)              # 100 s after the signature, 50 s after the keep-alive
        mark = len(calls_since(s, 0))
        r = sign(s, "dev/api")
        check(r.get("ok"), f"the signature after the idle period: {r}")
        signing = [ln for ln in calls_since(s, mark) if ln.startswith(("C_SignInit ", "C_Sign "))]
        check(any(ln.startswith("C_Sign rv=0x0 ") for ln in signing), f"no C_Sign: {signing}")
        check(not [ln for ln in signing if "FAULT" in ln],
              f"a signing session was closed as idle although kept alive: {signing}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([("busy_while_starting", test_busy_while_starting),
                        ("no_token_before_its_key_is_served",
                         test_no_token_before_its_key_is_served),
                        ("token_failure_is_a_token_error", test_token_failure_is_a_token_error),
                        ("busy_connection_is_prepared_for",
                         test_busy_connection_is_prepared_for),
                        ("pool_shrinks_and_grows_back", test_pool_shrinks_and_grows_back),
                        ("idle_sessions_kept_warm", test_idle_sessions_kept_warm)]))
