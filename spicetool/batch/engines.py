"""Where process_capture runs: a local process pool, or a Dask distributed cluster. Both take the same
jobs and give back, as each finishes, (job, result) or (job, one-line trouble) when the work itself was
lost (its worker process died too often); a capture's own failure is inside its result."""

from __future__ import annotations

import glob
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

from spicetool.batch.work import Job, capture_dir, process_capture

ATTEMPTS = 3  # a capture whose worker dies this often is given up (until the next run): it is what kills them
Outcome = tuple[Job, "dict[str, Any] | str"]


class EngineError(Exception):
    """The engine cannot start (the scheduler cannot be reached): one line, nothing was done."""


def started(job: Job) -> bool:
    """Whether a worker of this host began the capture and did not finish it (its scratch folder)."""
    parent = os.path.dirname(capture_dir(job.out, job.sha256))
    return bool(glob.glob(os.path.join(parent, f".{job.sha256}.{os.uname().nodename}.*.tmp")))


def _ignore_sigint() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the driver stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalEngine:
    """concurrent.futures' ProcessPoolExecutor on forkserver processes (started clean, not forked from a
    driver holding threads and a progress bar), preloaded with what every capture needs."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: Any = None

    def _start(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["spicetool.batch.work", "spicetool.triage.command",
                                        "spicetool.triage.figures", "spicetool.triage.thumbs",
                                        "spicetool.render.frames"])
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_ignore_sigint)

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        attempts = dict.fromkeys((j.sha256 for j in jobs), 0)
        todo = list(jobs)
        while todo:
            self._start()
            futures = {self.pool.submit(process_capture, j): j for j in todo}
            todo, lost = [], []
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    job = futures[f]
                    try:
                        yield job, f.result()
                    except BrokenProcessPool:
                        lost.append(job)
                    except Exception as exc:  # noqa: BLE001 - the pool could not run it (pickling, ...)
                        yield job, f"{type(exc).__name__}: {exc}"
            self.close()
            # a worker died: the whole pool is gone. An attempt is counted against the captures a worker
            # had begun (their scratch folder is there); those still queued are only sent again
            began = [j for j in lost if started(j)] or lost
            for job in lost:
                if job in began:
                    attempts[job.sha256] += 1
                if attempts[job.sha256] >= ATTEMPTS:
                    yield job, f"its worker process died {ATTEMPTS} times (killed, or out of memory)"
                else:
                    todo.append(job)

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
        if terminate is not None:
            terminate()
        else:
            for p in list((getattr(pool, "_processes", None) or {}).values()):
                p.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
    """dask.distributed: the scheduler at `address`, or a LocalCluster of worker processes. A worker that
    dies mid-task has its task run again elsewhere by the scheduler (distributed.scheduler.allowed-failures
    times); past that the capture is given up as KilledWorker."""

    def __init__(self, address: str | None, workers: int) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address is None:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        else:
            try:
                # within Dask's distributed.comm.timeouts.connect (30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
                self.client = Client(address)
            except (OSError, TimeoutError, ValueError) as exc:  # refused, timed out, a bad address
                line = str(exc).strip().splitlines()
                raise EngineError(f"cannot reach the Dask scheduler {address}: "
                                  f"{line[-1] if line else type(exc).__name__}") from None
        self.futures: list[Any] = []

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        from dask.distributed import as_completed

        run = uuid.uuid4().hex[:12]
        by_key = {}
        for j in jobs:
            f = self.client.submit(process_capture, j, key=f"spicetool-batch-{j.sha256}-{run}", pure=False)
            by_key[f.key] = j
            self.futures.append(f)
        for f in as_completed(self.futures):
            job = by_key[f.key]
            try:
                yield job, f.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, or a worker that cannot import spicetool
                line = str(exc).strip().splitlines()
                yield job, f"{type(exc).__name__}: {line[0] if line else ''}".rstrip(": ")
            f.release()

    def close(self) -> None:
        try:
            pending = [f for f in self.futures if not f.done()]  # (interrupted: the rest is not wanted)
            if pending:
                self.client.cancel(pending)
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def engine(name: str, scheduler: str | None, workers: int | None) -> LocalEngine | DaskEngine:
    n = workers or os.cpu_count() or 1
    if name == "dask":
        return DaskEngine(scheduler, n)
    return LocalEngine(n)
