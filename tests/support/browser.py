"""Headless Chromium (Debian's package) and Airflow's real API app on a loopback port, for tests that look
at pages as a person would. Plain functions; the fixtures live in the tests.

Chromium is a prerequisite of `make test` (installed with apt when missing and running as root). If it
cannot be found, a test using it fails with the reason: it is never skipped.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium_binary() -> str:
    path = os.environ.get("FEEDBACK_LOOP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(
            f"headless Chromium not found at {path}: install Debian's chromium package "
            "(`apt-get install -y chromium`, which `make test` does when run as root) or set FEEDBACK_LOOP_CHROMIUM"
        )
    return path


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


@contextmanager
def airflow_api_server() -> Iterator[str]:
    """The real Airflow API app (core UI and API, plus our plugins) served by uvicorn on a free loopback
    port, in this process; yields its base URL. Airflow's metadata DB must exist."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(
        uvicorn.Config(create_app(apps="core"), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Airflow API server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


class DevTools:
    """One page of headless Chromium driven over the DevTools protocol on a pipe
    (`--remote-debugging-pipe`: requests on fd 3, answers on fd 4, each a JSON message ended by NUL), so a
    test can wait for an element, read what only script sees (an image's natural width) and list every URL
    the page requested, with no port and no websocket library.

    Use as a context manager: `with DevTools(binary, profile) as page: page.open(url) ...`."""

    def __init__(self, binary: str, profile: Path, *args: str) -> None:
        self.command = [
            binary,
            *CHROMIUM_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            *args,
        ]
        self.requested: list[str] = []  # every URL the page asked for, in order (Network.requestWillBeSent)
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None

    def __enter__(self) -> DevTools:
        to_browser, self._send_fd = os.pipe()
        self._receive_fd, from_browser = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's fixed descriptors 3 and 4
            read, write = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            self.command,
            preexec_fn=wire_pipes,  # only dup2 between fork and exec
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser)
        os.close(from_browser)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Network.enable")
        self.call("Page.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._session = None
            self.call("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            os.close(self._send_fd)
            os.close(self._receive_fd)
            self.process.stderr.close()

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result; events read meanwhile are
        recorded."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline, method)
            if answer.get("method") == "Network.requestWillBeSent":
                self.requested.append(answer["params"]["request"]["url"])
            if answer.get("id") == self._next_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer.get("result", {})

    def _receive(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"chromium did not answer {method} in time"
            ready, _, _ = select.select([self._receive_fd], [], [], left)
            if ready:
                chunk = os.read(self._receive_fd, 1 << 16)
                assert chunk, f"chromium closed the pipe ({self.process.poll()}) during {method}"
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        assert "errorText" not in result, f"{url}: {result['errorText']}"

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy (a single-page app renders after its own API
        calls); returns its value, or fails with the page's text."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise AssertionError(
                    f"not true after {timeout}s: {expression}; the page says: {text[-1500:]}"
                )
            time.sleep(interval)

    def screenshot(self, path: Path, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
