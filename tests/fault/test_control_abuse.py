# SPDX-License-Identifier: Apache-2.0
"""Local users abusing keymgrd's control socket (issue 16): every attack runs on the real
socket, as other uids, bounded in count, and stops by itself.

Denied requests fill the disk (before: one peer's 1,038,048 pipelined sign requests left
1,038,040 sign-denied log lines and 9,406 audit rows). Now a peer's denials are folded per
key set and interval (daemon.denial_interval, 60 s): the first is logged and recorded at once,
the repeats are counted and reported in one line and one audit event when the interval has
passed (keymgr/daemon/denials.c). Every process runs under an injected wall clock (libfaketime,
frozen; the test moves it), so the counts are exact:
  - `nobody` pipelines 3000 sign requests for dev/api and 500 for dev/nosuch: every reply is
    "denied"; two log lines and two audit events, whatever the count; root still signs;
  - the clock passes the interval: one more line and one audit event per key set, with the
    number of repeats (2999, 499);
  - 100 more in the next interval: one line and one event at once, and the 99 repeats are
    reported when keymgrd stops.

Control connections can be starved (before: two users holding 48 and 16 idle connections made
root's `status` and `sign` fail with "too many control connections from your user", which
root did not have). Now daemon.control_reserved (16 of the 64) are kept for root, keymgrd's
user and the listed signers, with the default limits:
  - `nobody` opens 49 idle connections: 48 are admitted, the 49th is refused naming
    daemon.control_per_peer (nobody does hold 48);
  - `daemon` (not a signer) opens 16: all refused, naming daemon.control_reserved, the limit
    that was reached, and not "from your user";
  - meanwhile root's `keymgr status` and `sign`, and `bin`'s sign (a listed signer), succeed.

Usage: test_control_abuse.py KEYMGR KEYMGRD
"""
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "signing"))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, run_tests,  # noqa: E402
                             wait_for)
from daemon_fixture import FAKETIME, Clock  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]
NOBODY = pwd.getpwnam("nobody").pw_uid


class AbuseSetup(SignSetup):
    """root and bin sign for dev/api; a control socket other users reach (group nogroup)."""

    def __init__(self):
        super().__init__(KEYMGR, KEYMGRD, policy={"rotation_period": "1h"},
                         signers={"api": "{ users: [ root, bin ] }"},
                         extra_daemon="control_group: nogroup\n")
        self.ctl_dir = tempfile.mkdtemp(prefix="kd-ctl-")
        os.chmod(self.ctl_dir, 0o755)
        self.socket = os.path.join(self.ctl_dir, "ctl.sock")
        self.write_config()

    def config_text(self, *args, **kw):
        # No store check every second: the main thread wakes for the test's requests only
        # (libfaketime read by two threads at once has been seen to give one the real time).
        return super().config_text(*args, **kw).replace("  poll_interval: 1\n",
                                                        "  poll_interval: 3600\n")

    def close(self):
        super().close()
        subprocess.run(["rm", "-rf", self.ctl_dir])


def as_user(name):
    """preexec_fn: become user name with group nogroup (so that it reaches the socket)."""
    pw, gid = pwd.getpwnam(name), pwd.getpwnam("nobody").pw_gid

    def become():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(pw.pw_uid)
    return become


# The control protocol's framing, for the clients below (they run as other users, in a
# process of their own, from a script given on the command line).
CLIENT = r"""
import collections, json, socket, struct, sys


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    return s


def frame(req):
    body = json.dumps(req).encode()
    return struct.pack(">I", len(body)) + body


def reply(s):
    hdr = s.recv(4, socket.MSG_WAITALL)
    if len(hdr) < 4:
        raise SystemExit("closed by keymgrd")
    return json.loads(s.recv(struct.unpack(">I", hdr)[0], socket.MSG_WAITALL))
"""

# Sends N sign requests for KEYSET in pipelined batches of 200 (reading each batch's replies
# before the next), prints the reply codes counted.
FLOOD = CLIENT + r"""
path, keyset, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = connect(path)
req = frame({"op": "sign", "keyset": keyset, "ttl": "2s",
             "claims": {"sub": "x", "aud": "api.test"}})
codes = collections.Counter()
left = n
while left:
    batch = min(200, left)
    s.sendall(req * batch)
    for _ in range(batch):
        r = reply(s)
        codes["ok" if r.get("ok") else r.get("code", "?")] += 1
    left -= batch
print(json.dumps(codes))
"""


def flood(s, keyset, n, user="nobody"):
    p = subprocess.run(["/usr/bin/python3", "-c", FLOOD, s.socket, keyset, str(n)],
                       preexec_fn=as_user(user), capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"flood client: {p.stderr}")
    return json.loads(p.stdout)


def denied_audit(s):
    """nobody's sign.denied events (root may be denied while keymgrd starts its signers)."""
    out = s.run("audit", "log", "dev", "--json").stdout
    return [e for e in json.loads(out) if e["action"] == "sign.denied" and
            e["actor"]["uid"] == NOBODY]


def denied_lines(d):
    return d.events("sign-denied", peer_uid=str(NOBODY))


def test_denied_flood(s, clock):
    d = Daemon(s)
    try:
        wait_for(lambda: call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS,
                                         "ttl": "2s"}).get("ok"), "root signing")
        check(flood(s, "dev/api", 3000) == {"denied": 3000}, "nobody's requests not denied")
        check(flood(s, "dev/nosuch", 500) == {"denied": 500}, "dev/nosuch not denied")
        # A listed signer is not affected.
        reply = call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS,
                                "ttl": "2s"})
        check(reply.get("ok") is True, f"root refused during the flood: {reply}")
        s.run("status")     # the main thread has recorded what the signers queued
        lines = denied_lines(d)
        check(sorted(l["keyset"] for l in lines) == ["api", "nosuch"] and
              all("repeated" not in l for l in lines), f"sign-denied lines: {lines}")
        check(len(denied_audit(s)) == 2, f"audit events: {denied_audit(s)}")
        # The interval passes: one line and one event per key set, with the count (status
        # wakes keymgrd's main thread, which closes the windows).
        clock.set(clock.now + 61)
        wait_for(lambda: s.run("status") and len(denied_lines(d)) >= 4, "the repeats logged")
        rep = {l["keyset"]: l["repeated"] for l in denied_lines(d) if "repeated" in l}
        check(rep == {"api": "2999", "nosuch": "499"}, f"repeats logged: {denied_lines(d)}")
        check(len(denied_lines(d)) == 4, f"sign-denied lines: {denied_lines(d)}")
        evs = denied_audit(s)
        folded = {e["keyset"]: e["after"]["repeated"] for e in evs if e.get("after")}
        check(len(evs) == 4 and folded == {"api": 2999, "nosuch": 499}, f"audit events: {evs}")
        # The next interval: its first denial at once, its repeats when keymgrd stops.
        check(flood(s, "dev/api", 100) == {"denied": 100}, "second flood")
        s.run("status")
        check(len(denied_lines(d)) == 5 and len(denied_audit(s)) == 5,
              f"the next interval: {denied_lines(d)} {denied_audit(s)}")
    finally:
        check(d.stop() == 0, "keymgrd exit status")
    last = denied_lines(d)[-1]
    check(len(denied_lines(d)) == 6 and last.get("repeated") == "99", f"at stop: {last}")
    evs = denied_audit(s)
    check(len(evs) == 6 and evs[-1]["after"]["repeated"] == 99, f"audit at stop: {evs[-1]}")


# Opens N connections and sends one request on each (a connection must send its first frame
# within 2 s), prints what each got ("held", or the refusal's error), then holds the admitted
# ones idle until its stdin closes.
HOLD = CLIENT + r"""
path, n = sys.argv[1], int(sys.argv[2])
held, out = [], []
for _ in range(n):
    s = connect(path)
    try:
        s.sendall(frame({"op": "nop"}))
    except OSError:
        pass        # refused: keymgrd answered at once and closed
    r = reply(s)
    if r.get("code") == "busy":
        out.append(r["error"])
        s.close()
    else:
        out.append("held")
        held.append(s)
print(json.dumps(out), flush=True)
sys.stdin.read()
"""


def hold(s, user, n):
    p = subprocess.Popen(["/usr/bin/python3", "-c", HOLD, s.socket, str(n)],
                         preexec_fn=as_user(user), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    check(line, f"holder {user} printed nothing")
    return p, json.loads(line)


SIGN_AS = CLIENT + r"""
s = connect(sys.argv[1])
s.sendall(frame({"op": "sign", "keyset": "dev/api", "ttl": "2s",
                 "claims": {"sub": "alice", "aud": "api.test", "client_id": "c"}}))
print(json.dumps(reply(s)))
"""


def test_reserved_connections(s):
    d = Daemon(s)
    holders = []
    try:
        wait_for(lambda: call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS,
                                         "ttl": "2s"}).get("ok"), "root signing")
        p, by_nobody = hold(s, "nobody", 49)
        holders.append(p)
        p, by_daemon = hold(s, "daemon", 16)
        holders.append(p)
        # Root and the listed signers still get in.
        p = s.run("status", "--json", expect=None, timeout=30)
        check(p.returncode == 0, f"root's status while others hold connections: {p.stderr}")
        reply = call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS,
                                "ttl": "2s"})
        check(reply.get("ok") is True, f"root's sign: {reply}")
        q = subprocess.run(["/usr/bin/python3", "-c", SIGN_AS, s.socket],
                           preexec_fn=as_user("bin"), capture_output=True, text=True,
                           timeout=60)
        reply = json.loads(q.stdout) if q.returncode == 0 else {"error": q.stderr}
        check(reply.get("ok") is True, f"bin's sign (a listed signer): {reply}")
        # What the others were told names the limit each one reached.
        check(by_nobody[:48] == ["held"] * 48, f"nobody's first 48: {by_nobody[:48]}")
        check("from your user (uid 65534 holds 48, daemon.control_per_peer)" in by_nobody[48],
              f"nobody's 49th: {by_nobody[48]}")
        check(all("daemon.control_reserved" in g and "from your user" not in g
                  for g in by_daemon), f"daemon's connections: {by_daemon}")
    finally:
        for p in holders:
            p.stdin.close()
            p.wait(timeout=60)
        check(d.stop() == 0, "keymgrd exit status")


def main():
    if os.geteuid() != 0:
        print("skip: needs root (other uids on the control socket)")
        return 77
    if not os.path.exists(FAKETIME):
        print(f"FAIL {FAKETIME} is missing: scripts/deps installs libfaketime")
        return 1
    s = AbuseSetup()
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        clock = Clock(s, int(time.time()) + 5)
        return run_tests([
            ("a denied flood is folded: exact log lines and audit events",
             lambda: test_denied_flood(s, clock)),
            ("connections kept for root and signers; refusals name the real limit",
             lambda: test_reserved_connections(s)),
        ])
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
