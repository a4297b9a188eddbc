"""`spicetool batch`: the driver. It finds the captures, hashes them, skips those done, hands the rest to an
engine, and as each comes back writes its Parquet part and then (last, atomically) its done marker; at the
end of every run, interrupted or not, the combined Parquet file, failures.json and index.html."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from spicetool.capture import EXIT_DAMAGED, EXIT_NO_SPICE, EXIT_UNREADABLE
from spicetool.batch.inputs import HashCache, InputError, expand
from spicetool.batch.work import Job, capture_dir

MARKER = "done.json"
EXIT_INTERRUPTED = 130


def _atomic_text(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_markers(out: str) -> dict[str, dict[str, Any]]:
    """sha256 -> done marker, of every capture done in OUT (this run's inputs or not)."""
    root = os.path.join(out, "captures")
    found: dict[str, dict[str, Any]] = {}
    for sha in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        try:
            with open(os.path.join(root, sha, MARKER), encoding="utf-8") as f:
                found[sha] = json.load(f)
        except (OSError, ValueError):
            continue  # not done (no marker, or one a crash cut short: it is written aside and renamed)
    return found


@contextmanager
def _ctrl_c_after() -> Iterator[None]:
    """Ctrl-C waits until the block is over: a capture's part and its marker are written both or neither."""
    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda sig, frame: got.append(sig))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


def _record(out: str, result: dict[str, Any]) -> dict[str, Any]:
    """The Parquet part first, then the marker: a capture is done when its marker is there."""
    from spicetool.batch.dataset import write_part

    write_part(out, result["sha256"], result["rows"])
    marker = {k: result.get(k) for k in ("capture", "sha256", "size", "status", "error", "files", "figures",
                                         "warnings", "host", "pid", "seconds")}
    marker["rows"] = len(result["rows"])
    _atomic_text(os.path.join(capture_dir(out, result["sha256"]), MARKER), json.dumps(marker, indent=1) + "\n")
    return marker


def finish(out: str, lost: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int]:
    """channels.parquet, failures.json and index.html from every capture done; (markers, rows)."""
    from spicetool.batch.dataset import combine
    from spicetool.batch.index import index_html

    _tidy(out)
    markers = read_markers(out)
    rows = combine(out, set(markers))
    failures = [{"capture": m["capture"], "sha256": m["sha256"], "status": m["status"], "error": m["error"]}
                for m in sorted(markers.values(), key=lambda m: m["capture"]) if m["status"] != "ok"]
    failures += [{**x, "status": "not done"} for x in lost]
    _atomic_text(os.path.join(out, "failures.json"), json.dumps(failures, indent=1) + "\n")
    _atomic_text(os.path.join(out, "index.html"), index_html(list(markers.values()), lost, out))
    return markers, rows


def _tidy(out: str) -> None:
    """Scratch folders of this host's dead workers (killed, interrupted): their capture is not done."""
    import glob
    import shutil

    from spicetool.batch.work import alive

    host = os.uname().nodename
    for scratch in glob.glob(os.path.join(out, "captures", f".*.{glob.escape(host)}.*.tmp")):
        pid = scratch.rsplit(".", 2)[-2]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


class _Progress:
    """Captures done and failed, and bytes per second (of capture read), on stderr."""

    def __init__(self, total_bytes: int, captures: int, quiet: bool) -> None:
        self.bar = None
        if quiet or not captures:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

        self.bar = Progress(TextColumn("{task.fields[done]}/{task.fields[n]} captures done, "
                                       "{task.fields[failed]} failed"), BarColumn(), TransferSpeedColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self.task = self.bar.add_task("batch", total=max(total_bytes, 1), done=0, failed=0, n=captures)
        self.bar.start()

    def advance(self, size: int, failed: bool) -> None:
        if self.bar is None:
            return
        fields = self.bar.tasks[0].fields
        self.bar.update(self.task, advance=size, done=fields["done"] + (not failed),
                        failed=fields["failed"] + failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def run_batch(inputs: list[str], out: str, engine_name: str, scheduler: str | None, render: bool,
              workers: int | None, quiet: bool, echo: Any = click.echo) -> int:
    """The batch; its exit code. `echo(line, err=True)` says what happened."""
    try:
        found = expand(inputs)
    except InputError as exc:
        echo(f"error: {exc}", err=True)
        return EXIT_UNREADABLE
    if not found:
        echo("error: no captures (*.pcap, *.pcapng, *.cap) in " + " ".join(inputs), err=True)
        return EXIT_NO_SPICE
    out = os.path.abspath(out)
    try:
        os.makedirs(os.path.join(out, "captures"), exist_ok=True)
        cache = HashCache(os.path.join(out, "hashes.json"))
    except OSError as exc:
        echo(f"error: {out}: cannot write: {exc.strerror or exc}", err=True)
        return EXIT_UNREADABLE
    markers = read_markers(out)
    jobs: list[Job] = []
    first: dict[str, str] = {}
    skipped = 0
    lost: list[dict[str, Any]] = []
    for x in found:
        path = os.path.abspath(x.path)
        try:
            sha = cache.sha256(path)
        except OSError as exc:
            lost.append({"capture": path, "sha256": "", "error": f"{path}: cannot be read: {exc.strerror or exc}"})
            continue
        if sha in first:
            echo(f"note: {path}: the same bytes as {first[sha]}: done once", err=True)
            continue
        first[sha] = path
        if sha in markers:
            skipped += 1
            continue
        jobs.append(Job(path, sha, x.size, out, render))
    cache.save()
    progress = _Progress(sum(j.size for j in jobs), len(jobs), quiet)
    failed = interrupted = 0
    started = time.monotonic()
    eng = None
    try:
        if jobs:
            from spicetool.batch.engines import EngineError, engine

            try:
                eng = engine(engine_name, scheduler, workers)
            except EngineError as exc:
                progress.close()
                echo(f"error: {exc}", err=True)
                return EXIT_UNREADABLE
            for job, result in eng.run(jobs):
                if isinstance(result, str):  # the work was lost, not the capture's fault: no marker
                    lost.append({"capture": job.capture, "sha256": job.sha256, "error": result})
                    bad = True
                else:
                    with _ctrl_c_after():
                        marker = _record(out, result)
                    bad = marker["status"] != "ok"
                progress.advance(job.size, bad)
                failed += bad
    except KeyboardInterrupt:
        interrupted = 1
    finally:
        progress.close()
        if eng is not None:
            try:
                eng.close()
            except (Exception, KeyboardInterrupt):  # noqa: BLE001 - what is done is on disk already
                pass
    for x in lost:
        echo(f"error: {x['capture']}: not done: {x['error']}", err=True)
    markers, rows = finish(out, lost)
    this_run = [markers[j.sha256] for j in jobs if j.sha256 in markers]
    for m in this_run:
        if m["status"] != "ok":
            echo(f"error: {m['error']}" if m["error"].startswith(m["capture"]) else
                 f"error: {m['capture']}: {m['error']}", err=True)
    seconds = time.monotonic() - started
    echo(f"{len(this_run)} capture(s) done in {seconds:.1f} s"
         + f", {sum(m['status'] != 'ok' for m in this_run) + len(lost)} with problems"
         + (f", {skipped} done before (skipped)" if skipped else "")
         + (f", {len(jobs) - len(this_run) - len(lost)} left (interrupted: run it again to finish)"
            if interrupted else "")
         + f"; {rows} row(s) in {os.path.join(out, 'channels.parquet')}; {os.path.join(out, 'index.html')}",
         err=True)
    if interrupted:
        return EXIT_INTERRUPTED
    if lost or any(m["status"] != "ok" for m in this_run):
        return EXIT_DAMAGED
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Folder of the outputs (made if missing; a rerun into it skips the captures done).")
@click.option("--engine", "engine_name", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: a process pool on this machine; dask: a Dask distributed cluster.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="With --engine dask: the cluster's scheduler (default: a LocalCluster of --workers processes).")
@click.option("--render", is_flag=True, help="Also each capture's video (as `spicetool render CAPTURE -o video.mp4`).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes of the local pool or the LocalCluster (default: one per core).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def batch(inputs: tuple[str, ...], out: str, engine_name: str, scheduler: str | None, render: bool,
          workers: int | None, quiet: bool) -> None:
    """Many captures at once: every capture's stats, findings and report (and video), a Parquet
    dataset of per-session and per-channel figures, and an index page, on this machine's cores
    or a Dask cluster.

    INPUT: capture files, folders (searched recursively for *.pcap, *.pcapng, *.cap) and globs
    (quote them: 'archive/2026-*/**/*.pcapng').

    \b
    OUT/ holds:
      captures/SHA256/   per capture, by content hash: stats.json (stats --json), findings.jsonl
                         (diagnose --json), report.html, video.mp4 (--render), error.txt (failed),
                         done.json (written last: the capture is done)
      channels.parquet   one row per session and channel of every capture done: capture path
                         and sha256, status and error, the session's and the channel's figures
                         (bytes and messages each way, duration, PING p50/p95, images, streams,
                         inputs, findings by severity, ...)
      parts/             the same, one Parquet file per capture, written as each is done: the
                         dataset so far while a batch runs or after it was killed
      failures.json      each capture that failed or is damaged, with its one-line error
      index.html         one line per capture, linking its report (open it offline)

    A capture that fails is recorded and the batch goes on. A rerun skips captures done
    (by content hash) and tries again those whose work was lost (a worker died three times).
    Ctrl-C stops the batch: what was done stays, with the combined files; run it again to
    finish. The same captures give the same Parquet values on either engine.

    \b
    Examples:
      spicetool batch captures/ -o /tmp/batch/ && xdg-open /tmp/batch/index.html
      spicetool batch 'archive/**/*.pcapng' -o out/ --workers 2 --render
      spicetool batch archive/ -o out/ --engine dask                      # a LocalCluster
      spicetool batch archive/ -o out/ --engine dask --scheduler tcp://10.0.0.5:8786
      python3 -c "import pyarrow.parquet as pq; print(pq.read_table('out/channels.parquet').to_pandas())"

    \b
    Exit codes: 0 every capture done and complete; 1 no captures found; 2 bad usage; 3 an
    input or OUT cannot be read or written, pyarrow (distributed) is not installed, or the
    --scheduler cannot be reached (nothing is done); 4 a capture failed, is damaged or was not
    done (failures.json says which; the rest are done); 130 interrupted (what was done is kept).
    """
    if scheduler and engine_name != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    if scheduler and workers:
        raise click.UsageError("--workers is the LocalCluster's: a --scheduler has the workers it has")
    missing = [m for m in ("pyarrow", *(("distributed",) if engine_name == "dask" else ()))
               if not _importable(m)]
    if missing:
        click.echo(f"error: spicetool batch needs {' and '.join(missing)}: pip install 'spicetool[cluster]'",
                   err=True)
        sys.exit(EXIT_UNREADABLE)
    sys.exit(run_batch(list(inputs), out, engine_name, scheduler, render, workers, quiet))


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
