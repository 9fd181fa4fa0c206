# SPDX-License-Identifier: Apache-2.0
"""Headless Chromium for the browser suite, contacting nothing off the machine.

- dump_dom(): Chromium's own --dump-dom (the DOM after the page's script ran);
- Page: one tab driven over --remote-debugging-pipe (the DevTools protocol on file
  descriptors 3 and 4, no port opened): it records every request, console message, log
  entry and uncaught exception of the page, evaluates expressions, takes screenshots and
  prints to PDF.

Chromium runs as root, so --no-sandbox; every background service is switched off and no
host name resolves (--host-resolver-rules), so that a page cannot reach the network even
if it tried: the tests see the attempt as a request.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

# Everything that would make Chromium talk to Google or anyone else, off.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-breakpad", "--no-pings",
    "--metrics-recording-only", "--disable-crash-reporter", "--no-proxy-server",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars", "--force-color-profile=srgb", "--font-render-hinting=none",
]


def find():
    """The Chromium binary: $KEYMGR_TEST_CHROMIUM, else Debian's chromium; None if missing."""
    path = os.environ.get("KEYMGR_TEST_CHROMIUM") or shutil.which("chromium") or \
        "/usr/bin/chromium"
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


class Browser:
    def __init__(self, binary):
        self.binary = binary
        self.home = tempfile.mkdtemp(prefix="keymgr-chromium-")

    def env(self):
        # No D-Bus, no desktop: Chromium's own profile and caches in the temp dir.
        return dict(os.environ, HOME=self.home, XDG_CONFIG_HOME=self.home,
                    XDG_CACHE_HOME=self.home, DBUS_SESSION_BUS_ADDRESS="disabled:")

    def argv(self, *extra):
        profile = tempfile.mkdtemp(dir=self.home)
        return [self.binary, *FLAGS, f"--user-data-dir={profile}", *extra]

    def dump_dom(self, url, width=1400, height=1000):
        p = subprocess.run(self.argv(f"--window-size={width},{height}", "--dump-dom", url),
                           env=self.env(), capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise RuntimeError(f"chromium --dump-dom {url}: exit {p.returncode}\n{p.stderr}")
        return p.stdout

    def open(self, url, width=1400, height=1000):
        return Page(self, url, width, height)

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


class Page:
    """One page over the DevTools pipe. Read .requests, .console, .exceptions after load."""

    def __init__(self, browser, url, width, height):
        self.url = url
        self.requests = []      # every URL the page asked for (the page itself included)
        self.console = []       # (level, text) of console calls and log entries
        self.exceptions = []
        self._next = 0
        self._buf = b""
        self._events = []
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():
            # Through fresh descriptors: a pipe may already sit on 3 or 4, and dup2 onto
            # itself would leave it close-on-exec.
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            browser.argv("--remote-debugging-pipe", f"--window-size={width},{height}",
                         "about:blank"),
            env=browser.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=fds, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(domain + ".enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session=True)
            self.call("Page.navigate", {"url": url}, session=True)
            self.wait_event("Page.loadEventFired")
            # Let late console messages and requests (images, fonts) arrive.
            self.evaluate("new Promise(r => setTimeout(r, 300))", wait=True)
        except Exception:
            self.close()
            raise

    # -- the protocol ----------------------------------------------------------------------

    def _send(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self._w, data)
            data = data[n:]

    def _read(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer ({self.url})")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe: " +
                                       self.proc.stderr.read().decode(errors="replace")[-2000:])
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _record(self, m):
        method, p = m.get("method"), m.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.console.append((p["type"], text))
        elif method == "Log.entryAdded":
            self.console.append((p["entry"]["level"], p["entry"]["text"]))
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(p["exceptionDetails"].get("text", "") + " " +
                                   json.dumps(p["exceptionDetails"].get("exception", {})))
        self._events.append(m)

    def call(self, method, params=None, session=False, timeout=120):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self._send(msg)
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._next:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self._record(m)

    def wait_event(self, method, timeout=120):
        deadline = time.monotonic() + timeout
        for m in self._events:
            if m.get("method") == method:
                return m
        while True:
            m = self._read(deadline)
            self._record(m)
            if m.get("method") == method:
                return m

    # -- what the tests use ----------------------------------------------------------------

    def evaluate(self, expr, wait=False):
        """The value of a JavaScript expression (awaited when wait), as JSON."""
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": wait}, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, clip=None):
        params = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = clip
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def pdf(self, path):
        data = self.call("Page.printToPDF", {"printBackground": True, "landscape": True,
                                             "preferCSSPageSize": True}, session=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def errors(self):
        """Console errors and warnings, log errors, uncaught exceptions."""
        return [f"{lvl}: {t}" for lvl, t in self.console if lvl in ("error", "warning",
                "assert")] + [f"exception: {e}" for e in self.exceptions]

    def foreign_requests(self):
        """Requests for anything but the page itself and data: URLs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]

    def close(self):
        try:
            self._send({"id": 0, "method": "Browser.close"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        os.close(self._w)
        os.close(self._r)
