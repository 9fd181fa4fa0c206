# SPDX-License-Identifier: Apache-2.0
"""keymgr verify --jwks URL: fetched with libcurl from a real HTTP server on 127.0.0.1,
within a time limit (5 s) and a size limit (1 MiB), never following a redirect, http(s)
only. Tokens and keys come from the corpus (tests/verify/corpus/).

Usage: /usr/bin/python3 test_fetch.py PATH-TO-KEYMGR [unittest options]
"""
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
KEYMGR = None
with open(os.path.join(CORPUS, "manifest.json")) as f:
    MANIFEST = json.load(f)
with open(os.path.join(CORPUS, "jwks.json"), "rb") as f:
    JWKS = f.read()
with open(os.path.join(CORPUS, "valid-es256.jwt")) as f:
    TOKEN = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    hits = []

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/jwk-set+json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body is not None:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on purpose (size limit)

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path == "/jwks.json":
            self.send(200, JWKS)
        elif self.path == "/redirect":
            self.send(302, b"", headers=[("Location", "/jwks.json")])
        elif self.path == "/redirect-file":
            self.send(301, b"", headers=[("Location", "file:///etc/passwd")])
        elif self.path == "/big":
            self.send(200, b" " * (1024 * 1024 + 1) + JWKS)
        elif self.path == "/big-chunked":
            # No Content-Length: the size limit must hold while reading.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(40):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(7)
            try:
                self.send(200, JWKS)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/private":
            doc = json.loads(JWKS)
            doc["keys"][0]["d"] = "AAAA"
            self.send(200, json.dumps(doc).encode())
        else:
            self.send(404, b"not found", "text/plain")


def verify(jwks_url, token=TOKEN):
    p = subprocess.run([KEYMGR, "verify", "--jwks", jwks_url, "--alg", "ES256",
                        "--iss", MANIFEST["iss"], "--aud", MANIFEST["aud"],
                        "--typ", MANIFEST["typ"], "-"],
                       input=token, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items()
                            if "proxy" not in k.lower()})
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in p.stderr, p.stderr
    return p


class FetchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cls.server.daemon_threads = True
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def refused(self, url, part):
        p = verify(url)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(part, lines[0])
        return lines[0]

    def test_fetch_ok(self):
        p = verify(self.base + "/jwks.json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["aud"], MANIFEST["aud"])

    def test_redirect_not_followed(self):
        Handler.hits.clear()
        self.refused(self.base + "/redirect", "HTTP 302 redirect not followed")
        self.assertEqual(Handler.hits, ["/redirect"])
        self.refused(self.base + "/redirect-file", "HTTP 301 redirect not followed")

    def test_size_limit(self):
        self.refused(self.base + "/big", "larger than 1048576 bytes")
        self.refused(self.base + "/big-chunked", "larger than 1048576 bytes")

    def test_timeout(self):
        self.refused(self.base + "/slow", "no complete answer within 5000 ms")

    def test_http_errors(self):
        self.refused(self.base + "/missing", "HTTP status 404, expected 200")
        self.refused(self.base + "/private", "private member \"d\"")
        # Nothing listens on port 1 of the loopback.
        self.refused("http://127.0.0.1:1/jwks.json", "jwks: http://127.0.0.1:1/jwks.json:")
        # TLS to a plain-HTTP server fails the handshake: no fallback to http.
        self.refused(self.base.replace("http:", "https:") + "/jwks.json", "jwks: https://")

    def test_other_schemes_refused(self):
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/jwks.json",
                    "gopher://127.0.0.1/"):
            with self.subTest(url=url):
                p = verify(url)
                self.assertEqual(p.returncode, 2)
                self.assertIn("only http:// and https:// URLs", p.stderr)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
