"""The built documentation site renders in a real browser.

Opens the landing page, one API page and one gallery page of
docs/_build/html in headless Chromium (driven over the DevTools protocol on a
pipe, so no Python package is needed) and checks that each has its title,
the navigation bar, the search box and all its images loaded, with no error
on the console and no resource that failed to load.  Screenshots go to
docs/_build/screenshots.  Skipped when the site is not built or Chromium is
not installed (.ci/run builds the site and installs Debian's `chromium`).
"""
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[1] / "docs" / "_build"
HTML = BUILD / "html"
PAGES = {"landing": "index.html", "api": "api/generated/nncore.Network.html",
         "gallery": "auto_examples/plot_mnist_fc.html"}
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome"))), None)
pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="no Chromium (apt-get install chromium)"),
    pytest.mark.skipif(not (HTML / "index.html").is_file(),
                       reason="the site is not built (sphinx-build -W -b html docs docs/_build/html)"),
]

CHECK = """JSON.stringify({
  title: document.title,
  navigation: document.querySelectorAll("nav.bd-docs-nav a, .bd-navbar a.nav-link, nav.navbar-nav a").length,
  search: !!document.querySelector("form.bd-search input[name=q], .search-button, input[type=search]"),
  images: Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]),
})"""


def place_fds(read_end, write_end):
    """In the child: Chromium reads commands on fd 3 and writes on fd 4."""
    read_end, write_end = os.dup(read_end), os.dup(write_end)   # out of the way of 3 and 4
    os.dup2(read_end, 3, inheritable=True)
    os.dup2(write_end, 4, inheritable=True)


class DevTools:
    """Chromium over --remote-debugging-pipe: JSON messages ended by NUL bytes."""

    def __init__(self, user_dir):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()
        self.process = subprocess.Popen(
            [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={user_dir}",
             "--window-size=1280,900", "about:blank"],
            close_fds=False,            # fds 3 and 4 are placed by place_fds
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: place_fds(to_browser_read, from_browser_write))
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer, self.next_id, self.events = b"", 0, []

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, session=None, timeout=60, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    devtools = DevTools(tmp_path_factory.mktemp("chromium"))
    yield devtools
    devtools.close()


def problems(events):
    """Console errors, uncaught exceptions and failed loads among the events."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            found.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                      for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            found.append("exception: " + str(params["exceptionDetails"].get("text")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')})")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"failed to load: {params.get('errorText')}")
    return found


@pytest.mark.parametrize("name", PAGES)
def test_page_renders(browser, name):
    path = HTML / PAGES[name]
    assert path.is_file(), f"{path} was not built"
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session)
    browser.events.clear()
    browser.send("Page.navigate", session, url=path.as_uri())
    browser.wait_for("Page.loadEventFired")
    time.sleep(0.5)                     # scripts that run after load (the theme's search, toc)
    state = json.loads(browser.send("Runtime.evaluate", session, expression=CHECK,
                                    returnByValue=True)["result"]["value"])
    shot = browser.send("Page.captureScreenshot", session, format="png")["data"]
    screenshots = BUILD / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    (screenshots / f"{name}.png").write_bytes(base64.b64decode(shot))
    browser.send("Target.closeTarget", targetId=target)

    assert "nncore" in state["title"], state["title"]
    assert state["navigation"] > 0, "no navigation links"
    assert state["search"], "no search box"
    broken = [src for src, loaded in state["images"] if not loaded]
    assert not broken, f"images that did not load: {broken}"
    if name == "gallery":
        assert state["images"], "the gallery page shows no figure"
    assert not problems(browser.events), problems(browser.events)
