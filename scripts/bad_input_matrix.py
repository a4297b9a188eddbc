#!/usr/bin/env python3
"""The bad-input matrix: corpus captures damaged in every way a customer's file can be, through every
command, each run checked for a traceback, a hang, its memory and its exit code.

    python scripts/bad_input_matrix.py [--captures GLOB] [--points 20] [--commands dissect,stats,...]
        [--jobs 2] [--timeout 120] [--max-rss-mib 2048] [--keep DIR]

Damage (seeded, so a failure can be rerun): the file cut at --points evenly spaced places (each
inside a record), bytes flipped, and its TCP segments rewritten with some dropped, duplicated or
reordered. Commands run inside a worker process that imports spicetool once (the commands' own
click entry, stdout and stderr redirected at the file descriptors), so thousands of runs take
minutes; a worker that hangs in native code is killed and the run counted as a hang.

A run passes when: no exception escaped the command (a traceback), it ended within --timeout, its
peak RSS stayed under --max-rss-mib, its exit code is one the commands document (0, 1, 3, 4, 5),
its error is one line ("error: ..."), and it still reported what came before the damage (dissect:
the records before the cut equal the intact capture's; the others: their output file or figures).
Prints one line per failure and a table per command; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED_EXITS = {0, 1, 3, 4, 5}   # ok, no SPICE / failure, unreadable, damaged, transport (see --help)
COMMANDS = ("dissect", "stats", "report", "render", "export", "serve", "batch")
DAMAGE = ("flip", "drop", "duplicate", "reorder")


@dataclass
class Job:
    command: str
    capture: str      # the intact capture
    damage: str       # "cut@K", "flip", "drop", "duplicate", "reorder"
    path: str         # the damaged file
    out: str          # a directory for the command's output files
    cut: int | None = None   # bytes kept, for cuts


@dataclass
class Result:
    job: Job
    exit: int | None = None
    seconds: float = 0.0
    rss_mib: float = 0.0
    stderr: str = ""
    problems: list[str] = field(default_factory=list)


# --- damage -------------------------------------------------------------------------------------

def record_ends(path: Path) -> list[int]:
    """Where each packet record ends in the file."""
    from spicetool.capture import open_capture

    reader = open_capture(str(path))
    return [reader.bytes_read for _ in reader]


def cuts(path: Path, points: int) -> list[int]:
    """`points` byte counts spread evenly over the file, each 7 bytes into a packet record."""
    ends = record_ends(path)
    if len(ends) < 2:
        return []
    return sorted({ends[min(len(ends) - 1, max(0, len(ends) * k // (points + 1)))] + 7 for k in range(1, points + 1)})


def flipped(data: bytes, seed: int) -> bytes:
    out = bytearray(data)
    rng = random.Random(seed)
    for _ in range(200):
        pos = rng.randrange(min(1000, len(out) - 1), len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def rewritten(src: Path, dst: Path, damage: str, seed: int) -> None:
    """The capture's TCP segments written again as pcap, with some dropped, duplicated or swapped."""
    from spicetool.capture import PcapWriter, open_capture

    segments = list(open_capture(str(src)))
    rng = random.Random(seed)
    carrying = [i for i, s in enumerate(segments) if s.payload]
    chosen = set(rng.sample(carrying, min(8, len(carrying))))
    out = []
    for i, seg in enumerate(segments):
        if i in chosen and damage == "drop":
            continue
        out.append(seg)
        if i in chosen and damage == "duplicate":
            out.append(seg)
    if damage == "reorder":
        for i in sorted(chosen):
            j = out.index(segments[i])
            if j + 3 < len(out):
                out[j], out[j + 3] = out[j + 3], out[j]
    with open(dst, "wb") as f:
        w = PcapWriter(f)
        for seg in out:
            w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)


def damaged(capture: Path, points: int, work: Path) -> list[tuple[str, Path, int | None]]:
    """(damage, file, bytes kept) for every damage of one capture."""
    data = capture.read_bytes()
    made = []
    for k, n in enumerate(cuts(capture, points), 1):
        p = work / f"{capture.stem}.cut{k}{capture.suffix}"
        p.write_bytes(data[:n])
        made.append((f"cut@{k}", p, n))
    p = work / f"{capture.stem}.flip{capture.suffix}"
    p.write_bytes(flipped(data, 1))
    made.append(("flip", p, None))
    for i, damage in enumerate(("drop", "duplicate", "reorder"), 2):
        p = work / f"{capture.stem}.{damage}.pcap"
        rewritten(capture, p, damage, i)
        made.append((damage, p, None))
    return made


# --- running ------------------------------------------------------------------------------------

def key_log(capture: Path) -> list[str]:
    """The TLS key log recorded beside a capture (NAME.keys.log), as the commands take it: a support engineer
    is handed both, and damage to the capture is what is tested, not a missing key log."""
    keys = capture.with_name(capture.name.split(".")[0] + ".keys.log")
    return ["--tls-keylog", str(keys)] if keys.exists() else []


def argv(job: Job) -> list[str]:
    out = Path(job.out)
    cmd = {
        "dissect": ["dissect", "--json", job.path],
        "stats": ["stats", "--json", job.path],
        "report": ["report", job.path, "-o", str(out / "report.html")],
        "render": ["render", "--last", job.path, "-o", str(out / "last.png")],
        "export": ["export", job.path, "-o", str(out / "plain.pcapng")],
        "serve": ["serve", "--disable-ticketing", "-p", str(_free_port()), "--speed", "10000", "--replay", job.path],
        "batch": ["batch", job.path, "-o", str(out / "batch")],
    }[job.command]
    keys = key_log(Path(job.capture)) if job.command != "batch" else []  # (batch reads key logs beside captures)
    return cmd[:1] + keys + cmd[1:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # resets VmHWM, so each run's peak is its own


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _ServeStopper:
    """serve runs until interrupted: interrupt it when its replay finished or it gave up. The SIGINT
    counts only while this job runs (a late one must not abort the worker's next job)."""

    def __init__(self, stderr_path: Path, timeout: float) -> None:
        import signal
        import threading

        self.active = True
        self.done = threading.Event()
        self.old = signal.signal(signal.SIGINT, self._on_int)
        self.path, self.timeout = stderr_path, timeout
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _on_int(self, *_: object) -> None:
        if self.active:
            raise KeyboardInterrupt

    def _watch(self) -> None:
        import signal

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not self.done.is_set():
            text = self.path.read_text(errors="replace")
            if "replay finished" in text or "error:" in text:
                break
            time.sleep(0.05)
        if not self.done.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None:
        import signal

        self.active = False
        self.done.set()
        self.thread.join()
        signal.signal(signal.SIGINT, self.old)


def run_in_worker(job: Job, timeout: float) -> dict:
    """One command in this process (the worker), its fds 1 and 2 sent to files."""
    import signal

    from spicetool.cli import main

    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    so, se = out / "stdout", out / "stderr"
    saved = os.dup(1), os.dup(2)
    code: int | None = None
    escaped = None
    with open(so, "wb") as fo, open(se, "wb") as fe:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)

        def hang(*_: object) -> None:
            raise TimeoutError(f"no end after {timeout:.0f} s")

        old = signal.signal(signal.SIGALRM, hang)
        signal.alarm(int(timeout))
        _peak_reset()
        started = time.monotonic()
        stopper = _ServeStopper(se, timeout - 5) if job.command == "serve" else None
        try:
            main.main(args=argv(job), prog_name="spicetool", standalone_mode=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except KeyboardInterrupt:
            code = 0
        except BaseException as e:  # what a user would have seen as a traceback
            escaped = f"{type(e).__name__}: {e}"
        finally:
            if stopper is not None:
                stopper.stop()
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
            seconds = time.monotonic() - started
            rss = _peak_mib()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return {"exit": code, "escaped": escaped, "seconds": seconds, "rss_mib": rss}


def worker_main() -> None:
    """Reads jobs (JSON lines) on stdin; for each, a "start" line then its result line on stdout."""
    real_out = os.fdopen(os.dup(1), "w", buffering=1)
    timeout = float(os.environ.get("BAD_INPUT_TIMEOUT", "120"))
    for line in sys.stdin:
        job = Job(**json.loads(line))
        real_out.write(json.dumps({"start": job.path}) + "\n")
        real_out.write(json.dumps(run_in_worker(job, timeout)) + "\n")


class Worker:
    """A worker process; restarted after a hang in native code or a crash."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "BAD_INPUT_TIMEOUT": str(self.timeout), "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT, start_new_session=True)

    def run(self, job: Job) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(asdict(job)) + "\n")
        self.proc.stdin.flush()
        lines: list[str] = []

        def read() -> None:
            for _ in range(2):
                lines.append(self.proc.stdout.readline())

        import threading
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(self.timeout + 30)
        if t.is_alive() or len(lines) < 2 or not lines[1]:
            hung = t.is_alive()
            self.close(kill=True)
            return {"exit": None, "escaped": "hang (killed)" if hung else "the worker died", "seconds": self.timeout,
                    "rss_mib": 0.0}
        return json.loads(lines[1])

    def close(self, kill: bool = False) -> None:
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                assert self.proc.stdin
                self.proc.stdin.close()
            self.proc.wait(30)
            self.proc = None


# --- checks -------------------------------------------------------------------------------------

def intact_records(capture: Path, cache: dict[str, list[dict]]) -> list[dict]:
    key = str(capture)
    if key not in cache:
        res = subprocess.run([sys.executable, "-m", "spicetool", "dissect", "--json", *key_log(capture), str(capture)],
                             capture_output=True,
                             text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
        cache[key] = [json.loads(line) for line in res.stdout.splitlines()]
    return cache[key]


def check(job: Job, got: dict, max_rss: float, intact: list[dict] | None) -> Result:
    r = Result(job, got["exit"], got["seconds"], got["rss_mib"])
    out = Path(job.out)
    err = (out / "stderr").read_text(errors="replace") if (out / "stderr").exists() else ""
    r.stderr = err[-400:]
    if got["escaped"]:
        r.problems.append(f"escaped: {got['escaped']}")
    if "Traceback" in err:
        r.problems.append("a traceback on stderr")
    if r.exit is not None and r.exit not in DOCUMENTED_EXITS:
        r.problems.append(f"exit {r.exit}, not a documented code")
    if r.rss_mib > max_rss:
        r.problems.append(f"peak RSS {r.rss_mib:.0f} MiB > {max_rss:.0f}")
    errors = [line for line in err.splitlines() if line.startswith(("error:", "Error:"))]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    if r.exit == 5:   # a transport broke under SPICE while others were decoded: said in a warning line
        if errors or not warnings:
            r.problems.append(f"exit 5 with {len(errors)} error and {len(warnings)} warning lines")
    elif r.exit not in (0, None) and job.command != "serve" and len(errors) != 1:
        r.problems.append(f"exit {r.exit} with {len(errors)} error lines")
    if r.exit in (0, 4) and not r.problems:
        r.problems += reported(job, out, intact)
    return r


UNTOLD_MESSAGES = 32   # messages of a connection a cut may leave too few of to tell its channel
MESSAGE_KEYS = ("time", "frame", "client", "server", "channel", "channel_id", "direction", "layer", "type", "size", "fields")


def _message(record: dict) -> dict:
    """A record's message, without what only the rest of the capture tells (a connection's other leg, which
    relay it went through): a cut capture cannot know those."""
    return {k: record.get(k) for k in MESSAGE_KEYS}


def _key(record: dict, identified: bool = True) -> str:
    m = _message(record)
    if not identified:
        m["channel"] = m["channel_id"] = None
    return json.dumps(m, sort_keys=True)


def _same_prefix(got: list[dict], intact: list[dict]) -> list[str]:
    """Records of a cut capture against the intact one's, up to the last frame the cut holds (its message may
    go on past the cut). The order may differ (a record waits for what names its channel, and the end of a
    file flushes what waits) and a channel the cut never names stays unknown; every message must be the
    intact capture's, and nearly all of the intact capture's must be there."""
    last = max(g["frame"] for g in got)
    mine = [g for g in got if g["frame"] < last]
    theirs = [g for g in intact if g["frame"] < last]
    known = {_key(g) for g in theirs}
    unnamed = {_key(g, False) for g in theirs}
    foreign = [g for g in mine if _key(g) not in known and not (g.get("channel") == "unknown" and _key(g, False) in unnamed)]
    if foreign:
        g = foreign[0]
        return [f"{len(foreign)} records before the cut are not the intact capture's (first: frame {g['frame']} {g['type']})"]
    # a connection caught mid-session is told by a run of varied messages: a cut may leave too few of them
    # (five key presses look like a pattern in image data), so it is left out; one with many is not
    seen = {g["client"] for g in mine}
    unseen = Counter(g["client"] for g in theirs if g["client"] not in seen and g["layer"] != "link")
    lost = [c for c, n in unseen.items() if n > UNTOLD_MESSAGES]
    if lost:
        return [f"connection {lost[0]}: {unseen[lost[0]]} messages before the cut, none reported"]
    theirs = [g for g in theirs if g["client"] in seen]
    if len(mine) < 0.9 * len(theirs) - 2:
        return [f"only {len(mine)} of the intact capture's {len(theirs)} records before the cut"]
    return []


def _spice_before(out: Path, intact: list[dict]) -> bool:
    """Whether the intact capture has SPICE records before where the cut one broke off ("after frame N")."""
    err = (out / "stderr").read_text(errors="replace")
    found = re.search(r"after frame (\d+)", err)
    if found is None:
        return True
    return any(g["frame"] <= int(found.group(1)) and g["layer"] in ("link", "message") for g in intact)


def reported(job: Job, out: Path, intact: list[dict] | None) -> list[str]:
    """What came before the damage is still there."""
    stdout = (out / "stdout").read_text(errors="replace")
    if job.command == "dissect":
        try:
            got = [json.loads(line) for line in stdout.splitlines()]
        except json.JSONDecodeError as e:
            return [f"dissect --json printed a line that is not JSON: {e}"]
        if job.damage.startswith("cut@") and intact is not None and got:
            return _same_prefix(got, intact)
        return []
    if job.damage.startswith("cut@") and intact is not None and not _spice_before(out, intact):
        return []   # nothing SPICE came before the cut: nothing to report
    if job.command == "stats":
        try:
            figs = json.loads(stdout)
        except json.JSONDecodeError:
            return ["stats --json printed no JSON"]
        return [] if "sessions" in figs else ["stats --json has no sessions"]
    wanted = {"report": "report.html", "render": "last.png", "export": "plain.pcapng"}.get(job.command)
    if wanted and not (out / wanted).exists():
        return [f"exit {job.command} 0/4 but no {wanted}"]
    return []


# --- main ---------------------------------------------------------------------------------------

def corpus(pattern: str) -> list[Path]:
    files = sorted(p for p in (ROOT / "captures").rglob(pattern) if p.suffix in (".pcap", ".pcapng"))
    return [p for p in files if ".cut" not in p.name]


def run_matrix(captures: list[Path], commands: list[str], points: int, jobs: int, timeout: float,
               max_rss: float, work: Path, log=print) -> list[Result]:
    """Every damage of every capture through every command; the results."""
    sys.path.insert(0, str(ROOT))
    all_jobs: list[Job] = []
    for capture in captures:
        cdir = work / capture.stem
        cdir.mkdir(parents=True, exist_ok=True)
        for damage, path, kept in damaged(capture, points, cdir):
            for command in commands:
                all_jobs.append(Job(command, str(capture), damage, str(path),
                                    str(cdir / f"{path.name}.{command}.out"), kept))
    cache: dict[str, list[dict]] = {}
    for capture in captures:   # what each cut is held against
        intact_records(capture, cache)
    shares = [all_jobs[i::jobs] for i in range(jobs)]

    def run_share(share: list[Job]) -> list[Result]:
        worker = Worker(timeout)
        results = []
        try:
            for job in share:
                results.append(check(job, worker.run(job), max_rss, cache.get(job.capture)))
        finally:
            worker.close()
        return results

    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for part in pool.map(run_share, shares):
            results += part
    for r in results:
        if r.problems:
            log(f"FAIL {r.job.command} {Path(r.job.capture).name} {r.job.damage}: {'; '.join(r.problems)}"
                f" | {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    return results


def table(results: list[Result]) -> str:
    rows = [f"{'command':<9}{'runs':>6}{'failed':>8}{'exits':>28}{'max s':>8}{'max RSS MiB':>13}"]
    for command in dict.fromkeys(r.job.command for r in results):
        mine = [r for r in results if r.job.command == command]
        exits: dict[str, int] = {}
        for r in mine:
            exits[str(r.exit)] = exits.get(str(r.exit), 0) + 1
        ex = " ".join(f"{k}:{v}" for k, v in sorted(exits.items()))
        rows.append(f"{command:<9}{len(mine):>6}{sum(1 for r in mine if r.problems):>8}{ex:>28}"
                    f"{max(r.seconds for r in mine):>8.1f}{max(r.rss_mib for r in mine):>13.0f}")
    return "\n".join(rows)


def main() -> None:
    if "--worker" in sys.argv:
        sys.path.insert(0, str(ROOT))
        worker_main()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captures", default="*", help="glob of corpus captures (under captures/, deployment included)")
    ap.add_argument("--points", type=int, default=20, help="places each capture is cut at")
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take")
    ap.add_argument("--max-rss-mib", type=float, default=2048.0)
    ap.add_argument("--keep", type=Path, help="keep the damaged files and outputs here")
    a = ap.parse_args()
    from spicetool.cli import SUBCOMMANDS

    commands = [c for c in a.commands.split(",") if c]
    missing = [c for c in commands if c not in SUBCOMMANDS]
    if missing:
        sys.exit(f"error: no such command: {', '.join(missing)}")
    work = a.keep or Path(tempfile.mkdtemp(prefix="spicetool-bad-input-"))
    started = time.monotonic()
    results = run_matrix(corpus(a.captures), commands, a.points, a.jobs, a.timeout, a.max_rss_mib, work)
    print(table(results))
    print(f"{len(results)} runs in {time.monotonic() - started:.0f} s; work files in {work}")
    if not a.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if any(r.problems for r in results) else 0)


if __name__ == "__main__":
    main()
