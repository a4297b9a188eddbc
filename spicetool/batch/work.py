"""The one per-capture function both engines run (a plain top-level function: it pickles by name).

It writes the capture's files into OUT/captures/SHA256/ (through a scratch folder renamed into place, so
a worker killed half-way leaves nothing that looks done) and returns what the driver needs: the rows of
the dataset, the status and the one-line error. The driver writes the Parquet part and the done marker;
the worker writes nothing else."""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from spicetool.capture import EXIT_NO_SPICE, CaptureFailure


@dataclass(frozen=True)
class Job:
    capture: str  # as the inputs named it
    sha256: str
    size: int
    out: str  # OUT/, absolute
    render: bool = False


def capture_dir(out: str, sha256: str) -> str:
    return os.path.join(out, "captures", sha256)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _video(capture: str, path: str, fps: float = 25.0) -> int:
    """`spicetool render CAPTURE -o path` (display 0 of the first session): frames written."""
    from spicetool.render.audio import PlaybackAudio
    from spicetool.render.frames import frames, records_of
    from spicetool.render.session import RenderStats, SessionScreen
    from spicetool.render.sizing import largest_picture
    from spicetool.render.video import VideoWriter

    size = largest_picture(records_of(capture), None, None, None, None)
    audio = PlaybackAudio()
    screen = SessionScreen(None, 0, False, audio, False)
    stats = RenderStats()
    writer = VideoWriter(path, fps, audio, size)
    try:
        for t, img in frames(records_of(capture), fps, screen=screen, stats=stats):
            writer.write(t, img, audio_expected=screen.playback_expected or audio.started)
    finally:
        writer.close()
    if stats.frames == 0 and os.path.exists(path):
        os.unlink(path)
    return stats.frames


def alive(pid: int) -> bool:
    """Whether another process of this host has that pid (a scratch folder with our own is a dead one's)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(folder: str, name: str, data: str) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write(data)


def _produce(job: Job, work: str) -> dict[str, Any]:
    from spicetool.batch.rows import rows_of
    from spicetool.triage.command import report_page
    from spicetool.triage.report import key_figures

    result: dict[str, Any] = {"status": "failed", "error": None, "rows": [], "files": [], "figures": None,
                              "warnings": []}
    try:
        figs, records, page, warnings = report_page(job.capture)
    except CaptureFailure as exc:
        return {**result, "error": str(exc).splitlines()[0]}
    result["warnings"] = warnings
    damage = str(records.failure).splitlines()[0] if records.failure else None
    if not figs["sessions"]:
        return {**result, "error": damage or f"no SPICE traffic found in {job.capture}",
                "code": records.failure.exit_code if records.failure else EXIT_NO_SPICE}
    _write(work, "stats.json", json.dumps(figs, default=str) + "\n")
    _write(work, "findings.jsonl", "".join(json.dumps(f, default=str) + "\n" for f in figs["findings"]))
    files = ["stats.json", "findings.jsonl"]
    if page is not None:
        _write(work, "report.html", page)
        files.append("report.html")
    if job.render:
        try:
            if _video(job.capture, os.path.join(work, "video.mp4")):
                files.append("video.mp4")
        except Exception as exc:  # noqa: BLE001 - the figures and page stand without the video
            result["warnings"].append(f"no video: {_one_line(exc)}")
    # the dataset holds what the figures hold, JSON's values (as stats.json has them)
    plain = json.loads(json.dumps(figs, default=str))
    return {**result, "status": "damaged" if damage else "ok", "error": damage, "files": files,
            "rows": rows_of(plain, job.capture, job.sha256, job.size, damage), "figures": key_figures(plain)}


def process_capture(job: Job) -> dict[str, Any]:
    """Everything of one capture; never raises for a capture's own trouble (that is the result's
    `error`): only the death of the process stops it, and then nothing is in place."""
    started = time.monotonic()
    final = capture_dir(job.out, job.sha256)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    host = os.uname().nodename
    for stale in glob.glob(os.path.join(parent, f".{job.sha256}.{host}.*.tmp")):  # a killed attempt's scratch
        if not alive(int(stale.rsplit(".", 2)[-2])):
            shutil.rmtree(stale, ignore_errors=True)
    work = os.path.join(parent, f".{job.sha256}.{host}.{os.getpid()}.tmp")
    os.makedirs(work)
    try:
        result = _produce(job, work)
    except MemoryError:
        result = {"status": "failed", "error": "out of memory", "rows": [], "files": [], "figures": None,
                  "warnings": []}
    except Exception as exc:  # noqa: BLE001 - one capture's failure must not sink the batch
        result = {"status": "failed", "error": f"{job.capture}: cannot be read ({_one_line(exc)})", "rows": [],
                  "files": [], "figures": None, "warnings": []}
    if result["status"] == "failed":
        _write(work, "error.txt", str(result["error"]) + "\n")
        result["files"] = ["error.txt"]
    if os.path.isdir(final):  # an earlier run's, whose done marker is missing: replaced whole
        shutil.rmtree(final)
    os.replace(work, final)
    result.update({"capture": job.capture, "sha256": job.sha256, "size": job.size, "pid": os.getpid(),
                   "host": host, "seconds": round(time.monotonic() - started, 3)})
    return result
