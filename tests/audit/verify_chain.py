#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Standalone verifier of a keymgr audit log, independent of keymgr's C code.

Usage: /usr/bin/python3 verify_chain.py STORE.db [AUDIT_KEY_KID]

Recomputes the hash chain of audit_events and checks every checkpoint's ES256 signature
against the audit key's public JWK stored in audit_keys (python3-cryptography), and that each
checkpoint's (seq, hash) is in the chain. With AUDIT_KEY_KID, every checkpoint must be signed
by that key. Prints "OK <events> events, checkpoint at seq <n>" and exits 0, or prints
"FAILED at seq <n>: <why>" and exits 1. This is the snippet docs/auditor-guide.md shows.
It only reads the file (sqlite3 URI mode=ro).
"""
import base64
import hashlib
import json
import sqlite3
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils


def canonical(obj):
    # RFC 8785 for keymgr's events: sorted members, no white space, UTF-8, integers only.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    path = sys.argv[1]
    pin_kid = sys.argv[2] if len(sys.argv) > 2 else None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    env = db.execute("SELECT value FROM meta WHERE key = 'env'").fetchone()[0]
    rows = db.execute("SELECT seq, at, actor_user, actor_uid, actor_host, actor_via, actor_pid,"
                      " action, keyset, kid, before, after, reason, policy_hash, prev_hash, hash"
                      " FROM audit_events ORDER BY seq").fetchall()
    prev, chain = "0" * 64, {}
    for i, r in enumerate(rows, start=1):
        (seq, at, user, uid, host, via, pid, action, keyset, kid, before, after, reason,
         policy_hash, prev_hash, stored) = r
        if seq != i:
            return fail(i, f"event {i} is missing")
        if prev_hash != prev:
            return fail(seq, "prev_hash does not match the previous event")
        event = {"action": action, "actor": {"host": host, "pid": pid, "uid": uid,
                 "user": user, "via": via}, "after": after, "at": at, "before": before,
                 "env": env, "keyset": keyset, "kid": kid, "policy_hash": policy_hash,
                 "reason": reason, "seq": seq, "v": 1}
        h = hashlib.sha256(bytes.fromhex(prev) + canonical(event)).hexdigest()
        if h != stored:
            return fail(seq, "content does not match its hash")
        chain[seq], prev = h, h
    keys = dict(db.execute("SELECT kid, public_jwk FROM audit_keys").fetchall())
    best = 0
    for cid, seq, h, at, kid, sig in db.execute(
            "SELECT id, seq, hash, at, key_kid, signature FROM audit_checkpoints ORDER BY id"):
        if pin_kid and kid != pin_kid:
            return fail(seq, f"checkpoint {cid} signed by {kid}, not {pin_kid}")
        jwk = json.loads(keys[kid])
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64url(jwk["x"]), "big"),
                                            int.from_bytes(b64url(jwk["y"]), "big"),
                                            ec.SECP256R1()).public_key()
        payload = canonical({"at": at, "env": env, "hash": h, "kid": kid, "seq": seq,
                             "type": "keymgr-audit-checkpoint", "v": 1})
        raw = b64url(sig)
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                         int.from_bytes(raw[32:], "big"))
        try:
            pub.verify(der, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return fail(seq, f"checkpoint {cid} has an invalid signature")
        if seq > len(rows):
            return fail(len(rows) + 1, f"log ends at {len(rows)}, checkpoint {cid} signed {seq}")
        if chain[seq] != h:
            return fail(seq, f"event differs from the one checkpoint {cid} signed")
        best = max(best, seq)
    print(f"OK {len(rows)} events, checkpoint at seq {best}")
    return 0


def fail(seq, why):
    print(f"FAILED at seq {seq}: {why}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
