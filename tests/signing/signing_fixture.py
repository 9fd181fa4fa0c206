# SPDX-License-Identifier: Apache-2.0
"""Fixture of the signing suite: the daemon suite's Setup/Daemon (tests/daemon/daemon_fixture.py)
with signers in the configuration, a raw control-socket client, and PyJWT verification against
the JWKS keymgrd serves.
"""
import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_fixture import Daemon, Failure, Setup, check, run_tests, wait_for  # noqa: E402,F401

import jwt  # noqa: E402  (python3-jwt, for /usr/bin/python3)

CLAIMS = {"sub": "alice", "aud": "api.test", "client_id": "test-client"}


class SignSetup(Setup):
    """Setup whose key sets list signers: signers maps "NAME" (every environment) or
    "ENV/NAME" to the YAML flow mapping of its signers."""

    def __init__(self, keymgr, keymgrd, signers=None, **kw):
        self.signers = signers if signers is not None else {"api": "{ users: [ root ] }"}
        super().__init__(keymgr, keymgrd, **kw)

    def config_text(self, policy=None, keyset_policy=None, extra_daemon=None, signers=None):
        text = super().config_text(policy, keyset_policy, extra_daemon)
        signers = self.signers if signers is None else signers
        out = []
        env = current = None
        for line in text.splitlines():
            out.append(line)
            s = line.strip()
            if line.startswith("  ") and not line.startswith("   ") and s.endswith(":"):
                env = s[:-1]
            if line.startswith("      ") and not line.startswith("       ") and s.endswith(":"):
                current = s[:-1]
            if s.startswith("audiences:"):
                v = signers.get(f"{env}/{current}", signers.get(current))
                if v is not None:
                    out.append(f"        signers: {v}")
        return "\n".join(out) + "\n"


def frame(req):
    """One frame of the control protocol: 4-byte big-endian length, then the JSON body (a
    dict, or bytes sent as they are)."""
    body = req if isinstance(req, bytes) else json.dumps(req).encode()
    return struct.pack(">I", len(body)) + body


def connect(sock_path, timeout=30):
    """A connection to keymgrd's control socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    return s


def closed_by_peer(s):
    """True when keymgrd has closed the connection (EOF or reset)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def call(sock_path, *requests, timeout=30):
    """Sends each request (a dict) on one connection; returns the replies."""
    s = connect(sock_path, timeout)
    replies = []
    try:
        for req in requests:
            s.sendall(frame(req))
            replies.append(read_frame(s))
    finally:
        s.close()
    return replies if len(requests) > 1 else replies[0]


def read_frame(s):
    def need(n):
        buf = b""
        while len(buf) < n:
            b = s.recv(n - len(buf))
            if not b:
                raise Failure("connection closed by keymgrd")
            buf += b
        return buf
    n = struct.unpack(">I", need(4))[0]
    return json.loads(need(n))


def jwks_keys(d, env="dev"):
    doc, _ = d.jwks(f"/{env}/.well-known/jwks.json")
    return {k["kid"]: k for k in doc["keys"]}


def verify(token, keys, typ="at+jwt", aud="api.test", iss="https://issuer.test",
           check_time=True):
    """PyJWT verification against a JWKS dict kid -> JWK; returns (header, claims).
    check_time=False skips exp/nbf/iat (for tokens compared after their short lifetime)."""
    header = jwt.get_unverified_header(token)
    check(header.get("typ") == typ, f"typ {header.get('typ')} != {typ}")
    jwk = keys.get(header.get("kid"))
    check(jwk is not None, f"kid {header.get('kid')} is not in the JWKS")
    key = jwt.PyJWK.from_dict(jwk)
    opts = {} if check_time else {"verify_exp": False, "verify_nbf": False,
                                  "verify_iat": False}
    claims = jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience=aud, issuer=iss,
                        leeway=1, options=opts)
    return header, claims
