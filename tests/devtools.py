"""A small driver of headless chromium over the DevTools protocol (`--remote-debugging-pipe`: JSON
messages, NUL-terminated, on the child's fds 3 and 4; no websocket library needed).

What the tests need and no more: open a page, evaluate JavaScript, send real mouse input, and keep
every console message, uncaught exception and network request the page made.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from support import need_program


class DevToolsError(RuntimeError):
    pass


class Browser:
    def __init__(self, width: int = 1200, height: int = 900, timeout: float = 30.0) -> None:
        exe = need_program("chromium")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-devtools-")
        to_child, self._w = os.pipe()  # we write commands; the child reads them on fd 3
        self._r, from_child = os.pipe()  # the child writes answers and events on fd 4
        argv = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={width},{height}", "about:blank"]
        # a small trampoline puts the two pipe ends at fds 3 and 4, where chromium looks for them
        # (dash cannot name fds above 9 in a redirection)
        put = f"import os; os.dup2({to_child}, 3); os.dup2({from_child}, 4); os.execv({exe!r}, {[exe, *argv[1:]]!r})"
        self.proc = subprocess.Popen([sys.executable, "-c", put], pass_fds=(to_child, from_child),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._next = 0
        self._answers: dict[int, queue.Queue] = {}
        self.events: list[dict[str, Any]] = []
        self._since = 0  # console() and requests() tell of the page opened last
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=self.session)

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._answers.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    with self._lock:
                        self.events.append(msg)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            n = self._next
            q: queue.Queue = queue.Queue()
            self._answers[n] = q
        msg: dict[str, Any] = {"id": n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        try:
            answer = q.get(timeout=self.timeout)
        except queue.Empty:
            raise DevToolsError(f"{method}: no answer in {self.timeout} s") from None
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, session=self.session, **params)

    def wait_event(self, method: str, since: int = 0) -> dict[str, Any]:
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            with self._lock:
                found = [e for e in self.events[since:] if e.get("method") == method]
            if found:
                return found[0]
            time.sleep(0.02)
        raise DevToolsError(f"no {method} in {self.timeout} s")

    def open(self, url: str) -> None:
        with self._lock:
            self._since = since = len(self.events)
        self.page("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", since)

    def evaluate(self, expression: str) -> Any:
        r = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise DevToolsError(f"{expression[:60]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real left click at viewport coordinates (press, release), as a user's mouse gives it."""
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def click_element(self, selector: str) -> None:
        """Scroll the first element matching `selector` into view and click its centre."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        self.click(*box)

    def console(self) -> list[str]:
        """Every console message, uncaught exception and browser log entry of the page so far."""
        out = []
        with self._lock:
            events = self.events[self._since:]
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled":
                out.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                         for a in p.get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description', d.get('text'))}")
            elif e.get("method") == "Log.entryAdded":
                out.append(f"log.{p['entry']['level']}: {p['entry']['text']}")
        return out

    def requests(self) -> list[str]:
        """The URL of every request the page made (data: URLs included: the caller decides)."""
        with self._lock:
            return [e["params"]["request"]["url"] for e in self.events[self._since:]
                    if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (DevToolsError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        self._reader.join(timeout=5)
        os.close(self._r)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
