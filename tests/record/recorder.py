"""Run `spicetool record` as a real process for the tests (own process group, ended by its pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import peers  # noqa: E402


class Recorder:
    def __init__(self, listen: int, target: int, out: Path, extra: Sequence[str] = (),
                 timeout: float = 20.0, env: dict[str, str] | None = None) -> None:
        self.out = out
        self.log_path = out.with_suffix(".log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["spicetool", "record", "--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{target}",
             "-w", str(out), *extra], stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env=env)
        # ready when it says so (probing the port would itself be a recorded connection)
        peers.wait_until(lambda: "listening on" in self.log(), timeout, "spicetool record", self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"spicetool record did not stop on {sig}")
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def screenshot(argv: Sequence[str], out: Path, env: dict[str, str] | None = None, timeout: float = 30.0) -> Path:
    """spicy-screenshot with any arguments (the peers helper knows only plain ports)."""
    p = subprocess.Popen(["spicy-screenshot", *argv, "-o", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        output, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise AssertionError("spicy-screenshot timed out")
    assert p.returncode == 0 and out.exists(), output.decode(errors="replace")
    return out
