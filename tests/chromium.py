"""Headless Chromium driven over the DevTools protocol through a pipe: Chromium's
``--remote-debugging-pipe`` reads commands on file descriptor 3 and writes replies and events on
4, each a JSON message ended by a NUL byte. So the browser test needs no websocket client and
no other package, only a ``chromium`` binary.

    with Chromium(find_chromium(), tmp_path / "profile") as browser:
        page = browser.inspect(path.as_uri(), tmp_path / "shot.png", SCRIPT)
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
COMMAND_FD, REPLY_FD = 3, 4  # where Chromium expects the pipe's two ends
SPARE_FD = 100


def find_chromium() -> str | None:
    """``$CHROMIUM`` or the first Chromium or Chrome on the PATH; None when there is none."""
    candidates = [os.environ.get("CHROMIUM", ""), *BINARIES]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


@dataclass
class PageResult:
    """What a page did: its errors (console, uncaught exceptions, failed loads), the value the
    script returned, and where the screenshot went."""

    errors: list[str]
    value: Any
    screenshot: Path
    session: str
    events: list[dict] = field(default_factory=list)


class Chromium:
    """One headless Chromium with a fresh profile, for the length of a ``with`` block."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.events: list[dict] = []
        self._buffer, self._next_id = b"", 0
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        profile.mkdir(parents=True, exist_ok=True)

        def pipe_fds() -> None:  # in the child: put the pipe's ends where Chromium wants them
            # Through spare numbers first, in case either end already sits on 3 or 4.
            os.dup2(commands_read, SPARE_FD)
            os.dup2(replies_write, SPARE_FD + 1)
            os.dup2(SPARE_FD, COMMAND_FD)  # dup2 makes them inheritable
            os.dup2(SPARE_FD + 1, REPLY_FD)
            os.close(SPARE_FD)
            os.close(SPARE_FD + 1)

        args = [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--hide-scrollbars",  # screenshots as wide as the window
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,  # else fds 3 and 4 would be closed after pipe_fds
            preexec_fn=pipe_fds,
        )
        os.close(commands_read)
        os.close(replies_write)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._commands, self._replies):
            os.close(fd)
        self._process.stderr.close()

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None) -> dict:
        """The first event ``method`` (of ``session``), already received or still to come."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready = select.select([self._replies], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited: {self._process.stderr.read().decode()}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    # ------------------------------------------------------------------ pages
    def inspect(
        self, url: str, screenshot: Path, script: str, width: int = 1280, height: int = 900
    ) -> PageResult:
        """Load ``url`` in a new tab of ``width`` x ``height`` CSS pixels, wait for the load
        event and every image to decode, run ``script`` (an expression whose value comes back),
        and save a screenshot of the whole page."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session)
        first_event = len(self.events)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        decoded = "Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
        value = self._evaluate(f"{decoded}.then(() => ({script}))", session)
        self._screenshot(session, screenshot)
        events = [e for e in self.events[first_event:] if e.get("sessionId") == session]
        return PageResult(page_errors(events), value, screenshot, session, events)

    def _evaluate(self, expression: str, session: str) -> Any:
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self.send("Runtime.evaluate", params, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"the script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _screenshot(self, session: str, path: Path) -> None:
        size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        params = {"format": "png", "captureBeyondViewport": True, "clip": clip}
        data = self.send("Page.captureScreenshot", params, session)["data"]
        path.write_bytes(base64.b64decode(data))

    def print_pdf(self, session: str, path: Path) -> None:
        """Print the page as the print style sheet lays it out, to a PDF file."""
        data = self.send("Page.printToPDF", {"preferCSSPageSize": True}, session)["data"]
        path.write_bytes(base64.b64decode(data))


def page_errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and browser log errors (a resource that failed to
    load) among a page's protocol events, as text."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            errors.append(str(params["exceptionDetails"].get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
    return errors
