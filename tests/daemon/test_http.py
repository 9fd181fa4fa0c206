# SPDX-License-Identifier: Apache-2.0
"""The HTTP layer through keymgrd: documents per environment and per key set, headers
(Content-Type, strong ETag, Cache-Control max-age = the smallest jwks_max_age of the
environment's key sets, Last-Modified), If-None-Match -> 304 (no Content-Length, no body,
connection closed), HEAD (the 200's Content-Length), 404, 405, malformed and
oversized requests answered 4xx (or closed) without disturbing other clients, and the
snapshot file (same bytes as served, mode 0644, its serial next to it).

Usage: /usr/bin/python3 test_http.py KEYMGR KEYMGRD
"""
import json
import os
import socket
import stat
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

ENV_PATH = "/dev/.well-known/jwks.json"


def raw(port, data, read=True, whole=False):
    """Sends data; reads up to the end of the header block, or (whole) until the server
    closes (10 s at most)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
                if not whole and b"\r\n\r\n" in out:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    s.close()
    return out


def header_fields(head):
    """{lower-case name: value} of a response's header block (status line skipped)."""
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out[name.strip().lower().decode()] = value.strip().decode()
    return out


def status_of(resp):
    if not resp:
        return None
    return int(resp.split(b" ", 2)[1])


def run(keymgr, keymgrd):
    # Key set "fast" caches for 1 s, "api" for 2 s: the environment document says 1.
    s = Setup(keymgr, keymgrd, keyset_policy={"fast": {"jwks_max_age": "1s"}})
    d = None
    try:
        s.keyset_create("dev/api")
        s.keyset_create("dev/fast", "EdDSA")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        d.wait_event("action", action="activate", keyset="fast")
        act = {k: [x["kid"] for x in s.keys(f"dev/{k}") if x["state"] == "active"]
               for k in ("api", "fast")}
        wait_for(lambda: len(d.kids(ENV_PATH)) == 2, "both keys in the environment JWKS")

        st, h, body = d.http("GET", ENV_PATH)
        check(st == 200, f"GET env document: {st}")
        check(h["content-type"] == "application/jwk-set+json", f"content-type {h}")
        check(h["etag"].startswith('"') and not h["etag"].startswith('W/'), "strong ETag")
        check(h["cache-control"] == "public, max-age=1", f"env max-age: {h['cache-control']}")
        check("last-modified" in h, "Last-Modified missing")
        check(sorted(k["kid"] for k in json.loads(body)["keys"]) ==
              sorted(act["api"] + act["fast"]), "env document holds both active keys")
        for ks, age in (("api", 2), ("fast", 1)):
            st2, h2, b2 = d.http("GET", f"/dev/{ks}/jwks.json")
            check(st2 == 200 and h2["cache-control"] == f"public, max-age={age}",
                  f"{ks} document: {st2} {h2.get('cache-control')}")
            check([k["kid"] for k in json.loads(b2)["keys"]] == act[ks],
                  f"{ks} document holds only its own key")

        # Conditional GET and HEAD.
        st, h3, b3 = d.http("GET", ENV_PATH, {"If-None-Match": h["etag"]})
        check(st == 304 and b3 == b"", f"If-None-Match: {st}")
        check(h3["etag"] == h["etag"] and h3["cache-control"] == h["cache-control"],
              "304 repeats ETag and Cache-Control")
        # On the wire: a 304 has no Content-Length (a client would wait for that many bytes)
        # and no body. libmicrohttpd 0.9.75 can do that only by closing the connection after
        # it, so it says "Connection: close" and nothing follows the header block.
        resp = raw(d.port, b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"If-None-Match: " + h["etag"].encode() + b"\r\n\r\n", whole=True)
        head, _, rest = resp.partition(b"\r\n\r\n")
        fields = header_fields(head)
        check(status_of(resp) == 304, f"raw conditional GET: {resp[:80]!r}")
        check("content-length" not in fields, f"304 carries Content-Length: {head!r}")
        check("transfer-encoding" not in fields, f"304 carries Transfer-Encoding: {head!r}")
        check(rest == b"", f"304 followed by {len(rest)} bytes: {rest[:40]!r}")
        check(fields.get("connection") == "close", f"304 without Connection: close: {head!r}")
        check(fields.get("etag") == h["etag"], "304 ETag on the wire")
        # A HEAD keeps the 200's Content-Length (and sends no body either).
        resp = raw(d.port, b"HEAD " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\n\r\n", whole=True)
        head, _, rest = resp.partition(b"\r\n\r\n")
        check(status_of(resp) == 200 and rest == b"", f"raw HEAD: {resp[:80]!r}")
        check(header_fields(head).get("content-length") == str(len(body)),
              f"HEAD Content-Length is not the document's {len(body)}: {head!r}")
        # A bad or stale ETag still gets the document with its Content-Length.
        resp = raw(d.port, b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"If-None-Match: \"0000\"\r\nConnection: close\r\n\r\n", whole=True)
        head, _, rest = resp.partition(b"\r\n\r\n")
        check(status_of(resp) == 200 and rest == body and
              header_fields(head).get("content-length") == str(len(body)),
              f"raw GET with a stale ETag: {resp[:80]!r}")
        st, h4, b4 = d.http("GET", ENV_PATH, {"If-None-Match": '"0000"'})
        check(st == 200 and b4 == body, "a stale ETag gets the document")
        st, h5, b5 = d.http("HEAD", ENV_PATH)
        check(st == 200 and b5 == b"" and h5["etag"] == h["etag"] and
              h5["content-length"] == str(len(body)), f"HEAD: {st} {h5}")

        # Unknown paths, other methods.
        for p in ("/nope/.well-known/jwks.json", "/dev/unknown/jwks.json", "/dev", "/"):
            check(d.http("GET", p)[0] == 404, f"GET {p} is not 404")
        for m in ("POST", "PUT", "DELETE", "PATCH"):
            check(d.http(m, ENV_PATH)[0] == 405, f"{m} is not 405")

        # Malformed and oversized requests: 4xx or closed, never a document.
        for bad in (b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\n\r\n",       # no Host
                    b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost : x\r\n\r\n",
                    b"GET " + ENV_PATH.encode() + b" HTTP/9.9\r\nHost: x\r\n\r\n",
                    b"GARBAGE\r\n\r\n",
                    b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " +
                    b"a" * 20000 + b"\r\n\r\n"):
            code = status_of(raw(d.port, bad))
            check(code is None or 400 <= code < 500 or code == 505,
                  f"malformed request {bad[:60]!r} answered {code}")
        # A client that opens a connection and sends half a request does not block others.
        hang = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        hang.sendall(b"GET " + ENV_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        check(d.http("GET", ENV_PATH)[2] == body, "other clients still served")
        hang.close()

        # The snapshot: same bytes, 0644, serial alongside (equal to the served serial).
        snap = os.path.join(s.dir, "snap", "dev.json")
        with open(snap, "rb") as f:
            check(f.read() == body, "snapshot differs from the served document")
        check(stat.S_IMODE(os.stat(snap).st_mode) == 0o644, "snapshot mode is not 0644")
        with open(snap + ".serial") as f:
            serial = int(f.read())
        metrics = d.metrics()
        check(f'keymgr_env_jwks_serial{{env="dev"}} {serial}' in metrics,
              "snapshot serial is not the served serial")
        check(not [n for n in os.listdir(os.path.dirname(snap)) if n.startswith(".")],
              "temporary snapshot files left behind")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([("http.documents-headers-errors-snapshot",
                         lambda: run(sys.argv[1], sys.argv[2]))]))
