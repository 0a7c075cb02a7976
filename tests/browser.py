"""Headless Chromium, driven over the DevTools protocol, to check a page the way a reader sees it.

Only the standard library: a minimal websocket client (RFC 6455, text frames,
client-side masking) is enough for the protocol's JSON messages, so the test
needs no browser-driving package and downloads nothing. The browser is
Debian's ``chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """The chromium executable, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class WebSocket:
    """A websocket client for one connection: send and receive text messages."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        # No Origin header: Chromium accepts connections without one from localhost.
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the browser closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        self.partial = b""
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket handshake refused: {head.decode(errors='replace')}")

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytes([0x81])  # FIN, text frame
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _frame(self) -> tuple[int, bytes] | None:
        """The next whole frame in the buffer as (first byte, payload), removed from it; None if incomplete."""
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = struct.unpack(">H", buffer[2:4])[0], 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = struct.unpack(">Q", buffer[2:10])[0], 10
        if len(buffer) < offset + length:
            return None
        self.buffer = buffer[offset + length :]
        return buffer[0], buffer[offset : offset + length]  # the server does not mask

    def receive(self) -> str:
        """The next text message. A socket timeout leaves the buffer whole, so the next call goes on."""
        while True:
            frame = self._frame()
            if frame is None:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the browser closed the connection")
                self.buffer += chunk
                continue
            first, payload = frame
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("the browser closed the websocket")
            if opcode in (0x9, 0xA):  # ping / pong: not part of a message
                continue
            self.partial += payload
            if first & 0x80:
                message, self.partial = self.partial, b""
                return message.decode()

    def close(self) -> None:
        self.sock.close()


@dataclass
class PageCheck:
    """What loading a page showed: its images and what the console and the network reported."""

    images: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def check_page(url: str, chromium: str, timeout: float = 60.0) -> PageCheck:
    """Load ``url`` in headless Chromium; report every image's state and every error and request seen."""
    profile = tempfile.mkdtemp(prefix="descentlab-chromium-")
    process = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = _devtools_port(Path(profile), process, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        ws = WebSocket(page["webSocketDebuggerUrl"], timeout=timeout)
        try:
            return _inspect(ws, url, timeout)
        finally:
            ws.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, process: subprocess.Popen, timeout: float) -> int:
    # Chromium writes the port it chose (we asked for any free one) to this file.
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            text = marker.read_text().split()
            if text:
                return int(text[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with code {process.returncode} before it was ready")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its debugging port")


_STATE = """JSON.stringify({state: document.readyState, images: Array.from(document.images).map(i => ({
    src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))})"""


def _inspect(ws: WebSocket, url: str, timeout: float) -> PageCheck:
    check = PageCheck()
    next_id = 0
    asked: int | None = None

    def call(method: str, **params) -> int:
        nonlocal next_id
        next_id += 1
        ws.send(json.dumps({"id": next_id, "method": method, "params": params}))
        return next_id

    for domain in ("Runtime", "Log", "Page", "Network"):
        call(f"{domain}.enable")
    call("Page.navigate", url=url)
    ws.sock.settimeout(1.0)
    deadline = time.monotonic() + timeout
    finished_at = None
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.receive())
        except TimeoutError:
            message = {}
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            check.errors.append(
                "console: " + " ".join(str(a.get("value", a)) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            check.errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            check.errors.append(f"log: {entry.get('text')} ({entry.get('url', '')})")
        elif method == "Network.requestWillBeSent":
            check.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Network.loadingFailed":
            check.errors.append(f"network: {params.get('errorText')} ({params.get('requestId')})")
        elif asked is not None and message.get("id") == asked:
            state = json.loads(message["result"]["result"]["value"])
            asked = None
            if state["state"] == "complete" and finished_at is None:
                check.images, finished_at = state["images"], time.monotonic()
        if finished_at is not None and time.monotonic() - finished_at > 0.5:
            return check  # loaded, and late console messages have had their moment
        # Poll the page's state after the load event or whenever nothing arrives: an event can be missed.
        if finished_at is None and asked is None and (method == "Page.loadEventFired" or not message):
            asked = call("Runtime.evaluate", expression=_STATE, returnByValue=True)
    raise TimeoutError(f"the page {url} did not finish loading in {timeout} s")
