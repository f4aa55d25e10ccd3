"""Open a page in headless Chromium and report what a person would see go wrong: console errors,
uncaught exceptions, failed loads and images that do not decode.

Driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``: JSON messages ended by
a NUL byte on file descriptors 3 and 4 of the browser), so it needs Debian's ``chromium`` package and
nothing from pip, and no port is opened.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Every image decoded, or the reason it did not; naturalWidth 0 means the browser could not read it.
IMAGES_JS = """
Promise.all([...document.images].map(img => img.decode().then(() => null, e => String(e))))
  .then(errors => [...document.images].map((img, i) => ({
    src: (img.getAttribute('src') || '').slice(0, 60), width: img.naturalWidth, error: errors[i]})))
"""


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@dataclass
class PageCheck:
    """What loading a page showed."""

    loaded: bool = False
    title: str = ""
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    images: list[dict[str, Any]] = field(default_factory=list)  # src, width (naturalWidth), error
    result: Any = None  # the value of ``then_evaluate``, when given

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [image for image in self.images if not image["width"] or image["error"]]


class _Pipe:
    """The DevTools protocol over the browser's pipe: numbered commands, events kept as they arrive."""

    def __init__(self, write_fd: int, read_fd: int, timeout: float):
        self.write_fd, self.read_fd, self.timeout = write_fd, read_fd, timeout
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise ConnectionError("Chromium closed its pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._read_message(deadline))


def _high_fd(fd: int) -> int:
    """The same pipe end at a number above 4, so that moving it to 3 or 4 in the child cannot clash."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


def check_page(path: Path, then_evaluate: str | None = None, timeout: float = 60.0) -> PageCheck:
    """Load ``path`` in headless Chromium, wait for its load event, decode every image and collect errors.

    ``then_evaluate``: a script run after the images (e.g. a click); its value lands in ``result``, and
    errors it causes are collected too.
    """
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium binary (apt-get install chromium)")
    to_child_read, to_child_write = map(_high_fd, os.pipe())
    from_child_read, from_child_write = map(_high_fd, os.pipe())

    def wire_pipe() -> None:  # in the child: its fd 3 reads commands, fd 4 writes answers
        os.dup2(to_child_read, 3)
        os.dup2(from_child_write, 4)

    check = PageCheck()
    with tempfile.TemporaryDirectory(prefix="tbench-chromium-") as profile:
        process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipe, close_fds=False)
        os.close(to_child_read)
        os.close(from_child_write)
        pipe = _Pipe(to_child_write, from_child_read, timeout)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                pipe.send(f"{domain}.enable", session=session)
            navigation = pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            if navigation.get("errorText"):
                check.errors.append(f"navigation: {navigation['errorText']}")
            else:
                pipe.wait_for("Page.loadEventFired")
                check.loaded = True

            def evaluate(expression: str) -> Any:
                reply = pipe.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                       "returnByValue": True}, session=session)
                if "exceptionDetails" in reply:
                    check.errors.append(f"evaluate: {reply['exceptionDetails'].get('text')}")
                return reply.get("result", {}).get("value")

            check.title = evaluate("document.title") or ""
            check.images = evaluate(IMAGES_JS) or []
            if then_evaluate:
                check.result = evaluate(then_evaluate)
            evaluate("new Promise(done => setTimeout(done, 100))")  # late console messages arrive first
            check.errors += _errors(pipe.events)
            try:
                pipe.send("Browser.close")
            except (ConnectionError, TimeoutError):
                pass
        finally:
            os.close(to_child_write)
            os.close(from_child_read)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return check
