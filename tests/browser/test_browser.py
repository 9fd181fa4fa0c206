# SPDX-License-Identifier: Apache-2.0
"""The key timeline and the HTML audit report, rendered in headless Chromium (issue 19).

Real keys first: an installation of tests/lifecycle/fixture.py (SoftHSM tokens, SQLite
stores) with key sets rotated, an owner changed with a <script> in its reason, a key
revoked, a signed checkpoint. Then each page is opened in Chromium (chromium.py: no network,
nothing off the machine) and checked for
  - its structure: a row for every key with its state, the chain badge, the trusted keys,
    a bar for every key, the timeline's labels not overlapping as the browser lays them out;
  - no console error, no uncaught exception, no request but the page itself;
  - text typed by users shown as text: a <script> in an owner name (planted in the store:
    the CLI refuses such owners) and in a reason never runs and is never an element;
and saves a screenshot and a PDF of each page in the artefact directory. The detectors are
checked too: a page with a blocked script and a remote image must trip both.
Chromium missing is a failure, not a skip (scripts/deps installs it).

Usage: /usr/bin/python3 test_browser.py PATH-TO-KEYMGR ARTEFACT-DIR [unittest options]
"""
import html.parser
import json
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lifecycle"))
import fixture  # noqa: E402
import chromium  # noqa: E402

ARTEFACTS = None   # set by main()
BROWSER = None
PWN = "<script>window.__km_pwned=1</script>"

# The texts of the timeline as the browser laid them out: any two that meet.
OVERLAPS = """(() => {
  const out = [], boxes = [...document.querySelectorAll('svg.km-timeline text')].map(t => {
    const r = t.getBoundingClientRect();
    return {t: t.textContent, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
  });
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.x0 < b.x1 - 0.5 && b.x0 < a.x1 - 0.5 && a.y0 < b.y1 - 0.5 && b.y0 < a.y1 - 0.5)
        out.push(a.t + ' / ' + b.t);
    }
  return {n: boxes.length, overlaps: out.slice(0, 10)};
})()"""

STRUCTURE = """(() => ({
  rows: [...document.querySelectorAll('#keys tbody tr.key')].map(r =>
      [r.dataset.kid, r.dataset.state, r.cells[0].textContent]),
  bars: [...document.querySelectorAll('svg.km-timeline g.key')].map(g =>
      [g.dataset.kid, g.dataset.state, g.dataset.planned || '']),
  bands: [...document.querySelectorAll('svg.km-timeline g.band')].map(g => g.dataset.keyset),
  badge: (document.getElementById('chain-badge') || {}).className || null,
  badgeText: (document.getElementById('chain-badge') || {}).textContent || null,
  first: document.body.firstElementChild.id,
  trusted: [...document.querySelectorAll('#trusted-kids code')].map(c => c.textContent),
  cached: [...document.querySelectorAll('#cached-kids code')].map(c => c.textContent),
  auditKid: (document.getElementById('audit-kid') || {}).textContent || null,
  scripts: document.scripts.length,
  pwned: window.__km_pwned === undefined ? null : window.__km_pwned,
  text: document.body.innerText,
}))()"""


class DomCounter(html.parser.HTMLParser):
    """Chromium's --dump-dom output, counted: script elements, key rows, key bars."""

    def __init__(self):
        super().__init__()
        self.scripts = 0
        self.rows = []
        self.bars = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "tr" and a.get("class") == "key":
            self.rows.append(a.get("data-kid"))
        elif tag == "g" and a.get("class") == "key":
            self.bars.append(a.get("data-kid"))


class BrowserTest(fixture.InstallationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        i = cls.inst
        i.create_keyset("production/api", "access-token", key=True)
        i.rotate("production/api", now=True)
        i.run("keyset", "set-owner", "production/api", "team-b", "--reason",
              PWN + " moved to team-b", ok=True)
        i.create_keyset("production/life", "life", key=True)
        i.rotate("production/life", now=True)
        retired = [k["kid"] for k in i.keys("production/life") if k["state"] == "retired"]
        i.run("revoke", retired[0], "--env", "production", "--reason",
              "leaked <img src=x onerror=alert(1)>", ok=True)
        i.create_keyset("production/wall", "wall", key=True)
        i.run("audit", "checkpoint", "production", ok=True)
        cls.kids = {}
        for ks in ("api", "life", "wall"):
            for k in i.keys("production/" + ks):
                cls.kids[k["kid"]] = (ks, k["state"])

    def out(self, name):
        return os.path.join(self.inst.dir, name)

    def open(self, path):
        self.assertTrue(os.path.isfile(path), f"{path} was not written")
        page = BROWSER.open("file://" + path)
        self.addCleanup(page.close)
        return page

    def assertClean(self, page):
        self.assertEqual(page.errors(), [], "console errors")
        self.assertEqual(page.foreign_requests(), [], "requests beyond the page")
        self.assertEqual(page.requests, [page.url])

    def assertLabelsApart(self, page):
        r = page.evaluate(OVERLAPS)
        self.assertGreater(r["n"], 10)
        self.assertEqual(r["overlaps"], [], "timeline labels overlap in the browser")

    def artefacts(self, page, name, pdf=True):
        page.screenshot(os.path.join(ARTEFACTS, name + ".png"))
        if pdf:
            page.pdf(os.path.join(ARTEFACTS, name + ".pdf"))
            with open(os.path.join(ARTEFACTS, name + ".pdf"), "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-")

    # -- the audit report ------------------------------------------------------------------

    def test_audit_report(self):
        path = self.out("audit.html")
        self.inst.run("audit", "report", "production", "--format", "html", "--at", "now",
                      "--output", path, ok=True)
        page = self.open(path)
        self.assertClean(page)
        s = page.evaluate(STRUCTURE)
        self.assertEqual(s["first"], "", "no alarm before the header on a verified log")
        self.assertEqual(s["badge"], "badge ok")
        self.assertEqual(s["badgeText"], "Audit log verified")
        self.assertTrue(s["auditKid"] and s["auditKid"] != "(unknown)", s["auditKid"])
        self.assertEqual({k: (ks, st) for k, st, ks in s["rows"]}, self.kids)
        self.assertEqual(len(s["rows"]), len(self.kids))
        drawn = {k: st for k, st, planned in s["bars"] if not planned}
        self.assertEqual(set(drawn), set(self.kids))
        self.assertIn("revoked", drawn.values())
        self.assertEqual(sorted(b for b in s["bands"]),
                         ["production/api", "production/life", "production/wall"])
        in_jwks = {k for k, (_, st) in self.kids.items()
                   if st in ("published", "active", "retired")}
        self.assertEqual(set(s["trusted"]), in_jwks)
        # the revoked key left the JWKS less than jwks_max_age (1h) ago: possibly cached
        self.assertEqual(s["cached"], [k for k, (_, st) in self.kids.items()
                                       if st == "revoked"])
        # what users typed is text, never markup
        self.assertIn(PWN + " moved to team-b", s["text"])
        self.assertIn("leaked <img src=x onerror=alert(1)>", s["text"])
        self.assertEqual(s["scripts"], 1)
        self.assertIsNone(s["pwned"])
        self.assertLabelsApart(page)
        self.artefacts(page, "audit-report")
        # the small picture of docs/auditor-guide.md
        page.screenshot(os.path.join(ARTEFACTS, "audit-report-top.png"),
                        clip={"x": 0, "y": 0, "width": 1400, "height": 1300, "scale": 0.6})
        # sortable offline: by kid, then the other way
        order = page.evaluate("new Promise(r => { location.hash = '#sort=kid'; setTimeout(() "
                              "=> r([...document.querySelectorAll('#keys tbody tr')].map(x => "
                              "x.dataset.kid)), 200) })", wait=True)
        self.assertEqual(order, sorted(self.kids))
        order = page.evaluate("new Promise(r => { location.hash = '#sort=-kid'; setTimeout(() "
                              "=> r([...document.querySelectorAll('#keys tbody tr')].map(x => "
                              "x.dataset.kid)), 200) })", wait=True)
        self.assertEqual(order, sorted(self.kids, reverse=True))
        self.assertClean(page)
        # Chromium's own --dump-dom agrees: one script (the page's), a row and a bar per key
        dom = DomCounter()
        dom.feed(BROWSER.dump_dom("file://" + path))
        self.assertEqual(dom.scripts, 1)
        self.assertEqual(sorted(dom.rows), sorted(self.kids))
        self.assertEqual(set(dom.bars) - {""}, set(self.kids))

    def test_z_tampered_owner_is_text_and_failure_comes_first(self):
        """Runs last: it breaks the production store's agreement with its log."""
        evil = PWN + "<b>bold</b>"
        c = sqlite3.connect(self.inst.store("production"))
        with c:
            c.execute("UPDATE keysets SET owner = ? WHERE name = 'wall'", (evil,))
        c.close()
        path = self.out("tampered.html")
        p = self.inst.run("audit", "report", "production", "--format", "html", "--output",
                          path, rc=1)
        self.assertIn("failed verification", p.stderr)
        page = self.open(path)
        self.assertClean(page)
        s = page.evaluate(STRUCTURE)
        self.assertEqual(s["first"], "verification-failed")
        self.assertTrue(s["text"].startswith("Do not trust this report"), s["text"][:200])
        self.assertEqual(s["badge"], "badge failed")
        self.assertIn(evil, s["text"])
        self.assertEqual(page.evaluate("document.querySelectorAll('b').length"), 0)
        self.assertEqual(s["scripts"], 1)
        self.assertIsNone(s["pwned"])
        self.artefacts(page, "audit-report-failed", pdf=False)

    # -- the timeline ----------------------------------------------------------------------

    def test_plan_html(self):
        path = self.out("plan.html")
        self.inst.run("plan", "production", "--format", "html", "--from", "@0",
                      "--horizon", "120d", "--output", path, ok=True)
        page = self.open(path)
        self.assertClean(page)
        s = page.evaluate(STRUCTURE)
        self.assertEqual(s["scripts"], 0)
        drawn = {k: st for k, st, planned in s["bars"] if not planned}
        self.assertEqual(drawn, {k: st for k, (_, st) in self.kids.items()})
        self.assertTrue(any(planned for _, _, planned in s["bars"]), "no planned key drawn")
        self.assertIn("Planned actions", s["text"])
        self.assertGreater(page.evaluate("document.querySelectorAll('tr.event').length"), 0)
        self.assertGreater(page.evaluate("document.querySelectorAll('.seg[class*=\"p-\"]')"
                                         ".length"), 0)
        self.assertGreater(page.evaluate("document.querySelectorAll('.exposure').length"), 0)
        self.assertIn("owner: team-b", s["text"] + page.evaluate(
            "document.querySelector('svg').textContent"))
        self.assertLabelsApart(page)
        self.artefacts(page, "plan")

    def test_plan_svg(self):
        path = self.out("plan.svg")
        self.inst.run("plan", "production/api", "--format", "svg", "--output", path, ok=True)
        with open(path) as f:
            self.assertTrue(f.read().startswith("<?xml"))
        page = self.open(path)
        self.assertClean(page)
        bars = page.evaluate("[...document.querySelectorAll('g.key')].map(g => g.dataset.kid)")
        api = {k for k, (ks, _) in self.kids.items() if ks == "api"}
        self.assertEqual(set(bars) - {""}, api)
        self.assertLabelsApart(page)
        self.artefacts(page, "timeline-svg", pdf=False)

    def test_broken_policy_drawn_without_plan(self):
        """A key set whose policy has errors: its past is drawn, never a plan made from an
        unvalidated policy; the picture says so and the command fails."""
        old = 'audiences: [ api.example.com ] }\n      life:'
        text = self.inst.config_text()
        self.assertIn(old, text)
        broken = self.inst.write_config("broken.yaml", text.replace(
            old, 'audiences: [ api.example.com ], policy: { rotation_period: soon } }\n'
                 '      life:', 1))
        path = self.out("broken.svg")
        p = self.inst.run("plan", "production", "--format", "svg", "--output", path,
                          config=broken, rc=1)
        self.assertIn("rotation_period", p.stderr)
        page = self.open(path)
        self.assertClean(page)
        bands = page.evaluate("[...document.querySelectorAll('g.band')].map(b => [b.dataset"
                              ".keyset, b.textContent.includes('not planned: the key set'),"
                              " b.querySelectorAll('g.key[data-planned]').length, "
                              "b.querySelectorAll('g.key:not([data-planned])').length])")
        api = {k for k, (ks, _) in self.kids.items() if ks == "api"}
        self.assertEqual(bands[0], ["production/api", True, 0, len(api)])
        for name, note, planned, _ in bands[1:]:
            self.assertFalse(note, name)
            self.assertGreater(planned, 0, name)

    # -- bad input -------------------------------------------------------------------------

    def test_bad_input_changes_nothing(self):
        before = self.inst.snapshot()
        missing = self.out("no-such-dir/x.html")
        cases = [
            (("plan", "--format", "pdf"), 2, "must be text, json, svg or html"),
            (("plan", "--from", "@0"), 2, "give --format svg or html"),
            (("plan", "--format", "svg", "--json"), 2, "two formats"),
            (("plan", "--format", "svg", "--from", "2999-01-01"), 2, "--from must be before"),
            (("plan", "--format", "svg", "--from", "yesterday"), 2, "invalid --from"),
            (("plan", "production/nope", "--format", "svg"), 1, "unknown key set"),
            (("plan", "--format", "html", "--output", missing), 1, "cannot write " + missing),
            (("audit", "report", "production", "--format", "pdf"), 2, "table, csv, json or html"),
            (("audit", "report", "production", "--output", self.out("r.csv")), 2,
             "give --format html"),
            (("audit", "report", "production", "--format", "html", "--output", missing), 1,
             "cannot write " + missing),
        ]
        for args, rc, words in cases:
            with self.subTest(args=args):
                p = self.inst.run(*args, rc=rc)
                self.assertIn(words, p.stderr)
                self.assertEqual(p.stdout, "")
        self.assertFalse(os.path.exists(os.path.dirname(missing)))
        # A picture that cannot be drawn whole leaves an earlier file of that name as it was.
        kept = self.out("kept.svg")
        with open(kept, "w") as f:
            f.write("earlier picture")
        p = self.inst.run("plan", "production/nope", "--format", "svg", "--output", kept, rc=1)
        self.assertIn("unknown key set production/nope", p.stderr)
        with open(kept) as f:
            self.assertEqual(f.read(), "earlier picture")
        os.unlink(kept)
        self.assertUnchanged(before, "refused plan and report commands")

    # -- the checks themselves -------------------------------------------------------------

    def test_detectors_see_a_bad_page(self):
        path = self.out("canary.html")
        with open(path, "w") as f:
            f.write("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                    "content=\"script-src 'none'\"></head><body><img src=\"http://192.0.2.1/"
                    "x.png\"><script>console.log('blocked')</script></body></html>")
        page = self.open(path)
        self.assertTrue(any("Content Security Policy" in e for e in page.errors()),
                        page.errors())
        self.assertIn("http://192.0.2.1/x.png", page.foreign_requests())


def main():
    global ARTEFACTS, BROWSER
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} PATH-TO-KEYMGR ARTEFACT-DIR [unittest options]",
              file=sys.stderr)
        sys.exit(2)
    binary = chromium.find()
    if binary is None:
        print("FAIL chromium is not installed (Debian's chromium package: scripts/deps "
              "installs it; or set KEYMGR_TEST_CHROMIUM)")
        sys.exit(1)
    ARTEFACTS = os.path.abspath(sys.argv[2])
    os.makedirs(ARTEFACTS, exist_ok=True)
    BROWSER = chromium.Browser(binary)
    del sys.argv[2]
    try:
        fixture.main()
    finally:
        BROWSER.cleanup()


if __name__ == "__main__":
    main()
