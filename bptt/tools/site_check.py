"""Open every page of the built book in headless Chromium and check it as a reader sees it.

For each HTML page under ``_build/html`` it checks that

- all math was typeset by MathJax (no ``.math`` element left untypeset, no raw
  ``$$``, ``\\(`` or ``\\[`` in the text, no MathJax error such as an undefined macro),
- every image loaded,
- no cell output is an error or a traceback,
- the browser console shows no error and no uncaught exception,
- every internal link points at an existing page and, with ``#anchor``, an existing id,

and saves a full-page screenshot under ``_build/site-check/``.

The machines that build this book are offline, so the page's MathJax, which
readers get from a CDN, is served from a local copy of the same MathJax 3
release (``--mathjax DIR``) by intercepting the request in the browser. Any
other request that leaves the site is blocked and reported.

    python -m bptt.tools.site_check _build/html --mathjax DIR [--out DIR]
    python -m bptt.tools.site_check --self-test --mathjax DIR

The self-test runs the checker on pages built to fail each check (and one
that must pass), so a checker that has gone blind fails loudly.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import mimetypes
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import websocket

MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling home, and an offline machine logs errors.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
]
SKIP = ("_static/", "_sources/", "_images/", "reports/", "genindex.html", "search.html")

# MathJax loads after the load event and typesets asynchronously: wait until its
# startup object exists, then for the promise that settles after the first typeset.
WAIT_FOR_MATHJAX = r"""
(async () => {
  if (!document.querySelector(".math")) return;
  for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
})()
"""

# Runs in the page after MathJax has finished; returns what Python then judges.
PAGE_PROBE = r"""
(() => {
  const skip = (node) => node.parentElement && node.parentElement.closest(
      "pre, code, script, style, mjx-container, .highlight, textarea");
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawMath = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!skip(n) && /\$\$|\\\(|\\\[|\$\\[A-Za-z]/.test(n.textContent)) {
      rawMath.push(n.textContent.trim().slice(0, 80));
    }
  }
  const untypeset = [...document.querySelectorAll(".math")]
      .filter((el) => !el.querySelector("mjx-container"))
      .map((el) => el.textContent.trim().slice(0, 80));
  // An undefined macro is drawn in red by MathJax's "noundefined" extension.
  const mathErrors = [...document.querySelectorAll('mjx-merror, mjx-mtext[style*="red"]')]
      .map((el) => (el.getAttribute("data-mjx-error") || el.textContent).slice(0, 80));
  const brokenImages = [...document.images]
      .filter((img) => !img.complete || img.naturalWidth === 0)
      .map((img) => img.getAttribute("src"));
  const errorOutputs = [...document.querySelectorAll(
      ".cell_output .output.error, .cell_output .output.traceback, .cell_output pre")]
      // A chapter may print a caught exception's message on purpose (a listing
      // "run as given"); only a traceback is an error output.
      .filter((el) => el.matches(".error, .traceback") ||
                      /Traceback \(most recent call last\)|^-{20,}\n\w+\s+Traceback/m
                        .test(el.textContent))
      .map((el) => el.textContent.trim().slice(0, 120));
  const links = [...document.querySelectorAll("a[href]")].map((a) => a.href);
  // A display equation wider than its box must sit in something that scrolls sideways.
  const scrolls = (el) => {
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if ((o === "auto" || o === "scroll") && a.scrollWidth > a.clientWidth) return true;
    }
    return false;
  };
  const clippedMath = [...document.querySelectorAll('mjx-container[display="true"]')]
      .filter((el) => {
        const math = el.firstElementChild || el;
        const wide = math.getBoundingClientRect().width > el.parentElement.clientWidth + 1 ||
                     math.getBoundingClientRect().right > window.innerWidth + 1;
        return wide && !scrolls(math);
      })
      .map((el) => (el.getAttribute("aria-label") || el.textContent).trim().slice(0, 60));
  return {rawMath, untypeset, mathErrors, brokenImages, errorOutputs, links, clippedMath,
          mathCount: document.querySelectorAll("mjx-container").length,
          height: Math.ceil(document.documentElement.scrollHeight)};
})()
"""


# At phone width: click the visible menu button, then count the chapter links a reader can see.
PHONE_MENU = r"""
(async () => {
  const buttons = [...document.querySelectorAll(".primary-toggle")]
      .filter((b) => b.offsetParent !== null);
  if (!buttons.length) return {button: false, visible: 0};
  buttons[0].click();
  await new Promise((resolve) => setTimeout(resolve, 600));
  const seen = [...document.querySelectorAll(".bd-sidebar-primary a, dialog a")].filter((a) => {
    const r = a.getBoundingClientRect();
    const inside = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 &&
                   r.right <= window.innerWidth + 1 && r.top < window.innerHeight;
    if (!inside || getComputedStyle(a).visibility === "hidden") return false;
    const top = document.elementFromPoint(r.left + Math.min(4, r.width / 2), r.top + r.height / 2);
    return top !== null && (top === a || a.contains(top));  // not covered by something else
  });
  return {button: true, visible: seen.length};
})()
"""
PHONE = (390, 844)  # an ordinary phone's viewport, in CSS pixels


@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)
    math: int = 0
    screenshot: str = ""


class Chromium:
    """A headless Chromium driven over the DevTools protocol, one tab reused for every page."""

    def __init__(self, executable: str, mathjax_dir: Path | None, site_origin: str):
        self.mathjax_dir = mathjax_dir
        self.site_origin = site_origin
        self.profile = Path(tempfile.mkdtemp(prefix="site-check-chromium-"))
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = self._wait_for_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            (tab,) = [t for t in json.load(r) if t["type"] == "page"][:1]
        self.ws = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        self.viewport(900)

    def viewport(self, height: int, width: int = 1280, mobile: bool = False):
        """A window of ``width`` x ``height`` pixels (a screenshot shows the window)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    def phone_problems(self, url: str) -> list[str]:
        """What a reader on a phone meets: clipped equations, and a menu that does not open."""
        self.viewport(PHONE[1], PHONE[0], mobile=True)
        try:
            probe = self.open(url)
            menu = self.call(
                "Runtime.evaluate", expression=PHONE_MENU, awaitPromise=True, returnByValue=True
            )["result"]["value"]
        finally:
            self.viewport(900)
        problems = [f"equation clipped at phone width: {m!r}" for m in probe["clippedMath"]]
        if menu["button"] and menu["visible"] < 2:
            problems.append("the menu does not open at phone width: no chapter link visible")
        return problems

    def _wait_for_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def close(self):
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- the protocol -----------------------------------------------------------------------
    def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["method"] == event for e in self.events):
                return next(e for e in self.events if e["method"] == event)
            self._receive()
        raise TimeoutError(f"no {event} within {timeout:.0f} s")

    def _receive(self) -> dict:
        message = json.loads(self.ws.recv())
        if message.get("method") == "Fetch.requestPaused":
            self._route(message["params"])  # answer at once, or the page stalls
        elif "method" in message:
            self.events.append(message)
        return message

    def _send_nowait(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))

    def _route(self, paused: dict):
        url, request_id = paused["request"]["url"], paused["requestId"]
        if url.startswith(self.site_origin) or url.startswith("data:"):
            self._send_nowait("Fetch.continueRequest", requestId=request_id)
        elif url.startswith(MATHJAX_CDN) and self.mathjax_dir is not None:
            local = self.mathjax_dir / urlparse(url).path.removeprefix(urlparse(MATHJAX_CDN).path)
            if local.is_file():
                kind = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
                self._send_nowait(
                    "Fetch.fulfillRequest",
                    requestId=request_id,
                    responseCode=200,
                    responseHeaders=[
                        {"name": "Content-Type", "value": kind},
                        {"name": "Access-Control-Allow-Origin", "value": "*"},
                    ],
                    body=base64.b64encode(local.read_bytes()).decode(),
                )
            else:
                self._send_nowait(
                    "Fetch.failRequest", requestId=request_id, errorReason="FileNotFound"
                )
        else:
            self.events.append({"method": "site_check.blocked", "params": {"url": url}})
            self._send_nowait(
                "Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient"
            )

    # -- one page ---------------------------------------------------------------------------
    def open(self, url: str) -> dict:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", expression=WAIT_FOR_MATHJAX, awaitPromise=True, timeout=30000)
        result = self.call("Runtime.evaluate", expression=PAGE_PROBE, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page probe failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                text = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]
                )
                errors.append(f"console.{params['type']}: {text[:160]}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description", details.get("text", ""))
                errors.append(f"uncaught exception: {text[:160]}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"console: {entry['text'][:120]} {entry.get('url', '')}".rstrip())
            elif method == "site_check.blocked":
                errors.append(f"requests an external resource: {params['url']}")
        return errors

    def screenshot(self, path: Path, height: int):
        height = max(600, min(height, 16000))
        self.viewport(height)
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.viewport(900)


def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _anchors(page: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page.read_text(errors="replace")))


def _link_problems(links: list[str], origin: str, root: Path, cache: dict) -> list[str]:
    problems = []
    for link in sorted(set(links)):
        if not link.startswith(origin):
            continue  # external links are not followed: the machines are offline
        url, fragment = urldefrag(link)
        target = root / unquote(urlparse(url).path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"broken link: {link.removeprefix(origin)}")
        elif fragment and target.suffix == ".html":
            if target not in cache:
                cache[target] = _anchors(target)
            if unquote(fragment) not in cache[target]:
                problems.append(f"broken anchor: {link.removeprefix(origin)}")
    return problems


LAUNCH_PATTERNS = (
    re.compile(r"^https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(.+)$"),
    re.compile(r"^https://mybinder\.org/v2/gh/[^?]+\?urlpath=(?:lab/)?tree/(.+)$"),
)


def _launch_problems(links: list[str], repo: Path | None) -> list[str]:
    """Colab and Binder buttons must open a notebook (``.ipynb``) that the repository has."""
    problems = []
    for link in sorted(set(links)):
        for pattern in LAUNCH_PATTERNS:
            match = pattern.match(link)
            if not match:
                continue
            path = unquote(match.group(1))
            if not path.endswith(".ipynb"):
                problems.append(f"launch button opens {path}, not a notebook: {link}")
            elif repo is not None and not (repo / path).is_file():
                problems.append(f"launch button opens {path}, which the repository lacks")
    return problems


def _download_problems(links: list[str], origin: str, root: Path, repo: Path | None) -> list[str]:
    """A chapter's ".ipynb" download must be its paired, runnable notebook from the repository."""
    problems = []
    for link in links:
        if not link.startswith(origin) or not link.endswith(".ipynb") or "/_sources/" not in link:
            continue
        served = root / unquote(urlparse(link).path).lstrip("/")
        page = served.relative_to(root / "_sources")
        paired = (repo / page) if repo else None
        if paired is None or not paired.is_file():
            problems.append(f"downloads {page}, which the repository lacks as a paired notebook")
        elif not served.is_file() or served.read_bytes() != paired.read_bytes():
            problems.append(f"the .ipynb download is not the paired notebook {page}")
    return problems


def pages(root: Path) -> list[Path]:
    """Every HTML page a reader can reach, not theme assets or generated indexes."""
    found = sorted(root.rglob("*.html"))
    return [p for p in found if not str(p.relative_to(root)).startswith(SKIP)]


def check_site(
    root: Path, mathjax_dir: Path | None, out: Path, chromium: str, repo: Path | None = None
) -> list[PageReport]:
    root = root.resolve()
    if not (root / "index.html").exists() and not pages(root):
        raise SystemExit(f"{root} holds no built site: run `make book` first")
    server, origin = _serve(root)
    browser = Chromium(chromium, mathjax_dir, origin)
    reports, anchor_cache = [], {}
    try:
        for page in pages(root):
            name = str(page.relative_to(root))
            report = PageReport(name)
            redirect = re.search(
                r'http-equiv="refresh" content="0; url=([^"]+)"', page.read_text(), re.I
            )
            if redirect:  # Jupyter Book's index.html only forwards to the first page
                target = origin + str(page.parent.relative_to(root) / redirect.group(1))
                report.problems += _link_problems([target.replace("/./", "/")], origin, root, {})
                reports.append(report)
                continue
            try:
                probe = browser.open(origin + name)
            except (TimeoutError, RuntimeError) as error:
                report.problems.append(f"did not load: {error}")
                reports.append(report)
                continue
            report.math = probe["mathCount"]
            report.problems += [f"untypeset math: {m!r}" for m in probe["untypeset"]]
            report.problems += [f"raw TeX in the text: {m!r}" for m in probe["rawMath"]]
            report.problems += [f"MathJax error: {m!r}" for m in probe["mathErrors"]]
            report.problems += [f"image did not load: {src}" for src in probe["brokenImages"]]
            report.problems += [f"error output: {text!r}" for text in probe["errorOutputs"]]
            report.problems += browser.console_errors()
            report.problems += _link_problems(probe["links"], origin, root, anchor_cache)
            report.problems += _launch_problems(probe["links"], repo)
            report.problems += _download_problems(probe["links"], origin, root, repo)
            report.problems += [f"equation clipped: {m!r}" for m in probe["clippedMath"]]
            report.problems += browser.phone_problems(origin + name)
            shot = out / (name.removesuffix(".html") + ".png")
            browser.screenshot(shot, probe["height"])
            report.screenshot = str(shot)
            reports.append(report)
    finally:
        browser.close()
        server.shutdown()
    return reports


def _write_report(reports: list[PageReport], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps([r.__dict__ for r in reports], indent=2))
    for r in reports:
        status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
        print(f"{r.page:<40} math={r.math:<4} {status}")
        for problem in r.problems:
            print(f"    - {problem}")


# -- self-test: pages that must fail, one that must pass -----------------------------------------
# As Sphinx and MyST-NB configure it: only .math elements are typeset, the text is not.
MATHJAX_TAG = (
    '<script>window.MathJax = {"options": {"processHtmlClass": '
    '"tex2jax_process|mathjax_process|math|output_area"}}</script>'
    f'<script defer src="{MATHJAX_CDN}es5/tex-mml-chtml.js"></script>'
)
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
FIXTURES = {
    "good.html": '<p>Math <span class="math">\\(x^2\\)</span></p><img src="dot.png">'
    '<a href="bad_link.html#there">ok</a><p id="here">code: <code>$$x$$</code></p>',
    "bad_math.html": '<p>Raw $$x^2$$ here and <span class="math">\\(\\undefinedmacro\\)</span></p>',
    "bad_image.html": '<img src="missing.png">',
    "bad_output.html": '<div class="cell_output"><div class="output traceback"><pre>'
    "Traceback (most recent call last):\nZeroDivisionError: division by zero</pre></div></div>",
    "bad_console.html": "<script>console.error('boom'); undefined_function();</script>",
    "bad_link.html": '<p id="there">x</p><a href="nowhere.html">a</a>'
    '<a href="good.html#nope">b</a>',
    "bad_external.html": '<img src="https://example.invalid/x.png" alt="">',
    "bad_launch.html": '<a href="https://colab.research.google.com/github/o/r/blob/main/'
    'book/page.md">Colab</a>',
    "bad_wide_math.html": '<div style="overflow:hidden;width:300px"><div class="math">'
    "\\[" + "+".join(f"x_{{{i}}}" for i in range(60)) + "\\]</div></div>",
    "bad_menu.html": '<button class="primary-toggle">menu</button>'
    '<div class="bd-sidebar-primary" style="display:none"><a href="good.html">1</a>'
    '<a href="good.html">2</a></div>',
}
EXPECTED = {
    "bad_math.html": ("raw TeX", "MathJax error"),
    "bad_image.html": ("image did not load",),
    "bad_output.html": ("error output",),
    "bad_console.html": ("console.error: boom", "uncaught exception"),
    "bad_link.html": ("broken link: nowhere.html", "broken anchor: good.html#nope"),
    "bad_external.html": ("requests an external resource",),
    "bad_launch.html": ("not a notebook",),
    "bad_wide_math.html": ("equation clipped:", "equation clipped at phone width"),
    "bad_menu.html": ("menu does not open",),
}


def self_test(mathjax_dir: Path, chromium: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        root.mkdir()
        (root / "dot.png").write_bytes(PNG_1PX)
        for name, body in FIXTURES.items():
            (root / name).write_text(
                f"<html><head>{MATHJAX_TAG}</head><body>"
                f'<section class="tex2jax_ignore mathjax_ignore">{body}</section></body></html>'
            )
        reports = {r.page: r for r in check_site(root, mathjax_dir, Path(tmp) / "out", chromium)}
    ok = True
    if reports["good.html"].problems or reports["good.html"].math != 1:
        print(f"self-test: the good page must pass with 1 formula: {reports['good.html']}")
        ok = False
    for page, needles in EXPECTED.items():
        for needle in needles:
            if not any(needle in p for p in reports[page].problems):
                print(f"self-test: {page} should report {needle!r}, got {reports[page].problems}")
                ok = False
    print("site-check self-test:", "ok" if ok else "FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", nargs="?", type=Path, default=Path("_build/html"))
    parser.add_argument(
        "--mathjax",
        type=Path,
        required=True,
        help="a local copy of the mathjax@3 npm package (its root folder)",
    )
    parser.add_argument("--out", type=Path, default=Path("_build/site-check"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="the repository the launch buttons must find notebooks in",
    )
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if not (args.mathjax / "es5" / "tex-mml-chtml.js").is_file():
        parser.error(f"--mathjax {args.mathjax} is not a mathjax@3 package folder")
    if args.self_test:
        return 0 if self_test(args.mathjax, args.chromium) else 1
    reports = check_site(args.site, args.mathjax, args.out, args.chromium, repo=args.repo)
    _write_report(reports, args.out)
    bad = [r for r in reports if r.problems]
    print(f"{len(reports)} pages checked, {len(bad)} with problems; screenshots in {args.out}/")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
