#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tampers with a copy of a keymgr store the way an attacker with write access (but without
the token) could. Used by tests/audit/test_audit_tamper.c.

  tamper.py DB rewrite SEQ          change event SEQ's reason and recompute the hash of it and
                                    of every later event (a consistent but rewritten chain)
  tamper.py DB forge-key [SEQ]      replace the audit key by the attacker's own P-256 key and
                                    re-sign every checkpoint with it; with SEQ, also rewrite the
                                    chain from SEQ, including the audit.key.create event, so
                                    that only a pinned audit kid can tell
Prints the attacker's audit kid for forge-key.
"""
import base64
import hashlib
import json
import sqlite3
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from verify_chain import canonical  # noqa: E402


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def rehash_from(db, env, start, edit):
    """Applies edit(row dict) to event start, then recomputes hashes from there on."""
    db.execute("DROP TRIGGER IF EXISTS audit_events_never_updated")
    cols = ["seq", "at", "actor_user", "actor_uid", "actor_host", "actor_via", "actor_pid",
            "action", "keyset", "kid", "before", "after", "reason", "policy_hash", "prev_hash",
            "hash"]
    rows = [dict(zip(cols, r)) for r in
            db.execute(f"SELECT {', '.join(cols)} FROM audit_events ORDER BY seq")]
    prev = "0" * 64
    for r in rows:
        if r["seq"] == start:
            edit(r)
        if r["seq"] >= start:
            ev = {"action": r["action"], "actor": {"host": r["actor_host"],
                  "pid": r["actor_pid"], "uid": r["actor_uid"], "user": r["actor_user"],
                  "via": r["actor_via"]}, "after": r["after"], "at": r["at"],
                  "before": r["before"], "env": env, "keyset": r["keyset"], "kid": r["kid"],
                  "policy_hash": r["policy_hash"], "reason": r["reason"], "seq": r["seq"],
                  "v": 1}
            r["prev_hash"] = prev
            r["hash"] = hashlib.sha256(bytes.fromhex(prev) + canonical(ev)).hexdigest()
            db.execute("UPDATE audit_events SET before=?, after=?, reason=?, prev_hash=?, hash=?"
                       " WHERE seq=?", (r["before"], r["after"], r["reason"], r["prev_hash"],
                                        r["hash"], r["seq"]))
        prev = r["hash"]
    return rows


def main():
    path, kind = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(path)
    env = db.execute("SELECT value FROM meta WHERE key='env'").fetchone()[0]
    if kind == "rewrite":
        seq = int(sys.argv[3])
        rehash_from(db, env, seq, lambda r: r.update(reason="rewritten by mallory"))
    elif kind == "forge-key":
        key = ec.generate_private_key(ec.SECP256R1())
        nums = key.public_key().public_numbers()
        x, y = nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")
        thumb = json.dumps({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)},
                           separators=(",", ":"), sort_keys=True).encode()
        kid = b64(hashlib.sha256(thumb).digest())
        jwk = json.dumps({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": kid,
                          "alg": "ES256", "use": "sig"}, separators=(",", ":"))
        old_kid = db.execute("SELECT kid FROM audit_keys WHERE active = 1").fetchone()[0]
        db.execute("UPDATE audit_keys SET kid=?, public_jwk=? WHERE kid=?", (kid, jwk, old_kid))
        rows = None
        if len(sys.argv) > 3:
            # Rewrite the audit.key.create event too (and so the chain from there).
            seq = db.execute("SELECT seq FROM audit_events WHERE action='audit.key.create' AND"
                             " kid=?", (old_kid,)).fetchone()[0]

            def edit(r):
                after = json.loads(r["after"])
                after.update(jwk=jwk, kid=kid)
                r["after"] = canonical(after).decode()
                r["kid"] = kid
            db.execute("DROP TRIGGER IF EXISTS audit_events_never_updated")
            db.execute("UPDATE audit_events SET kid=? WHERE seq=?", (kid, seq))
            rows = rehash_from(db, env, seq, edit)
        hashes_by_seq = {r["seq"]: r["hash"] for r in rows} if rows else None
        for cid, seq, h, at in db.execute("SELECT id, seq, hash, at FROM audit_checkpoints"
                                          ).fetchall():
            if hashes_by_seq:
                h = hashes_by_seq[seq]
            payload = canonical({"at": at, "env": env, "hash": h, "kid": kid, "seq": seq,
                                 "type": "keymgr-audit-checkpoint", "v": 1})
            r, s = utils.decode_dss_signature(key.sign(payload, ec.ECDSA(hashes.SHA256())))
            sig = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            db.execute("UPDATE audit_checkpoints SET hash=?, key_kid=?, signature=? WHERE id=?",
                       (h, kid, sig, cid))
        print(kid)
    else:
        sys.exit(f"unknown kind {kind}")
    db.commit()


if __name__ == "__main__":
    main()
