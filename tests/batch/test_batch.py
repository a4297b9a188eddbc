"""`spicetool batch` on a few corpus captures and two broken ones: the outputs of each capture are those of
its own commands, the Parquet rows are its figures, the Dask engine (a LocalCluster of worker processes,
and a real `dask scheduler` with a `dask worker` whose process is killed mid-capture) gives the same
values, a rerun does only what is not done, and Ctrl-C leaves a dataset that reads."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import CAPTURES, need_module

GOOD = ("typing.pcapng", "resize.pcapng", "mid-session.pcap")
JUNK_ERROR = "not a pcap or pcapng capture (starts with 00000000)"


def batch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["spicetool", "batch", "-q", *args], capture_output=True, text=True, timeout=timeout)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inputs(folder: Path) -> Path:
    """The good captures (symlinked: their path is the folder's), a truncated one and garbage, in a tree."""
    (folder / "sub").mkdir(parents=True)
    for name in GOOD[:2]:
        (folder / name).symlink_to(CAPTURES / name)
    (folder / "sub" / GOOD[2]).symlink_to(CAPTURES / GOOD[2])
    whole = (CAPTURES / "typing.pcapng").read_bytes()
    (folder / "sub" / "cut.pcapng").write_bytes(whole[: len(whole) * 9 // 10 + 3])
    (folder / "junk.pcap").write_bytes(b"\x00" * 64)
    (folder / "notes.txt").write_text("not a capture")
    return folder


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    need_module("pyarrow")
    root = tmp_path_factory.mktemp("batch")
    src = inputs(root / "in")
    r = batch(str(src), "-o", str(root / "out"), "--workers", "2")
    return src, root / "out", r


def read(out: Path):
    import pyarrow.parquet as pq
    return pq.read_table(out / "channels.parquet")


def test_local_engine_outputs(local) -> None:
    src, out, r = local
    # the damaged and the unreadable capture are recorded, the others done: exit 4, one line each
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr
    errors = sorted(line for line in r.stderr.splitlines() if line.startswith("error: "))
    assert errors == [f"error: {src / 'junk.pcap'}: {JUNK_ERROR}",
                      f"error: {src / 'sub' / 'cut.pcapng'}: capture truncated" + errors[1].split("truncated", 1)[1]]
    failures = json.loads((out / "failures.json").read_text())
    assert [(f["capture"], f["status"]) for f in failures] == [(str(src / "junk.pcap"), "failed"),
                                                                (str(src / "sub" / "cut.pcapng"), "damaged")]
    assert failures[0]["error"] == f"{src / 'junk.pcap'}: {JUNK_ERROR}" and "\n" not in failures[1]["error"]
    # one folder per capture by content hash, with what the capture's own commands write
    for name in GOOD:
        path = CAPTURES / name
        folder = out / "captures" / sha(path)
        stats = subprocess.run(["spicetool", "stats", "--json", str(path)], capture_output=True, text=True)
        assert (folder / "stats.json").read_text() == stats.stdout
        diagnose = subprocess.run(["spicetool", "diagnose", "--json", str(path)], capture_output=True, text=True)
        assert (folder / "findings.jsonl").read_text() == diagnose.stdout
        assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
        assert json.loads((folder / "done.json").read_text())["status"] == "ok"
    junk = out / "captures" / sha(src / "junk.pcap") / "error.txt"
    assert junk.read_text() == f"{src / 'junk.pcap'}: {JUNK_ERROR}\n"
    # the index links every report relatively, and they are there
    index = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    assert len([x for x in links if x.endswith("report.html")]) == 4  # the cut one has its page too
    assert all(not re.match(r"[a-z]+:", x) and (out / x).is_file() for x in links), links
    assert "<script src" not in index and "http" not in index


def test_parquet_rows_are_the_figures(local) -> None:
    import pyarrow.dataset as ds
    src, out, _ = local
    table = read(out)
    rows = table.to_pylist()
    expected = []
    for path, shown in [(CAPTURES / n, src / n) for n in GOOD[:2]] + [(CAPTURES / GOOD[2], src / "sub" / GOOD[2])]:
        figs = json.loads((out / "captures" / sha(path) / "stats.json").read_text())
        for s in figs["sessions"]:
            for c in s["channels"]:
                expected.append((str(shown), sha(path), s["session"], c["channel"], c["channel_id"],
                                 c["wire_bytes"]["client"], c["wire_bytes"]["server"], c["messages"].get("server", 0),
                                 s["latency"]["per_channel"].get(c["name"], {}).get("p95_ms"), "ok"))
    got = [(r["capture"], r["sha256"], r["session"], r["channel"], r["channel_id"], r["wire_bytes_client"],
            r["wire_bytes_server"], r["messages_server"], r["ping_p95_ms"], r["status"]) for r in rows
           if r["status"] == "ok"]
    assert sorted(got, key=str) == sorted(expected, key=str) and len(expected) >= 10
    typing = [r for r in rows if r["capture"] == str(src / "typing.pcapng")]
    display = next(r for r in typing if r["channel"] == "display")
    assert display["session_images"] == 314 and display["session_screen_width"] == 1024
    assert sum(r["findings_info"] for r in typing) <= typing[0]["session_findings_info"]
    # the truncated capture's rows are there, marked damaged with its error
    cut = [r for r in rows if r["status"] == "damaged"]
    assert cut and {r["capture"] for r in cut} == {str(src / "sub" / "cut.pcapng")}
    assert all("truncated" in r["error"] and r["capture_findings_warning"] >= 1 for r in cut)
    # the folder of parts is the same dataset
    parts = ds.dataset(out / "parts", format="parquet").to_table()
    assert sorted(map(str, parts.to_pylist())) == sorted(map(str, rows))


def test_the_dataset_has_plain_types(local) -> None:
    # pandas, DuckDB and Spark take Parquet's types as they are: counts int64, names strings, no column
    # typeless for being empty (pandas is not in the cluster extra: its read_parquet is this pyarrow reader)
    import pyarrow as pa
    schema = read(local[1]).schema
    assert schema.field("wire_bytes_server").type == pa.int64() and schema.field("channel").type == pa.string()
    assert schema.field("capture_bytes").type == pa.int64() and all(f.type != pa.null() for f in schema), schema


def test_dask_local_cluster_gives_the_same_values(local, tmp_path: Path) -> None:
    need_module("distributed")
    src, out, _ = local
    r = batch(str(src), "-o", str(tmp_path), "--engine", "dask", "--workers", "2")
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr
    a, b = read(out), read(tmp_path)
    assert a.schema == b.schema and a.num_rows == b.num_rows and a.to_pylist() == b.to_pylist()
    assert (out / "channels.parquet").read_bytes() == (tmp_path / "channels.parquet").read_bytes()
    assert (out / "failures.json").read_text() == (tmp_path / "failures.json").read_text()
    pids = {json.loads(p.read_text())["pid"] for p in tmp_path.glob("captures/*/done.json")}
    assert os.getpid() not in pids and len(pids) >= 1  # the worker processes did them


def test_rerun_skips_what_is_done_and_redoes_a_missing_marker(local, tmp_path: Path) -> None:
    src, out, _ = local
    again = tmp_path / "out"
    shutil.copytree(out, again, symlinks=True)
    before = read(again).to_pylist()
    resize = again / "captures" / sha(CAPTURES / "resize.pcapng")
    (resize / "done.json").unlink()
    (resize / "stats.json").write_text("left by a killed run")
    kept = {p: p.read_text() for p in again.glob("captures/*/done.json")}
    r = batch(str(src), "-o", str(again), "--workers", "2")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr  # nothing of this run failed
    assert "1 capture(s) done" in r.stderr and "4 done before (skipped)" in r.stderr, r.stderr
    assert all(p.read_text() == text for p, text in kept.items())
    assert json.loads((resize / "stats.json").read_text())["sessions"]
    assert read(again).to_pylist() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args: str) -> subprocess.Popen:
    exe = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    assert exe, "distributed is installed but its dask command is not"
    return subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _worker_ready(address: str) -> None:
    """Until the nanny has finished starting its worker: a worker killed before that is not restarted
    (the nanny gives up, "Nanny failed to start"), which is Dask's rule, not what this test is about."""
    from dask.distributed import Client

    def status(dask_worker) -> str:  # noqa: ANN001 - the nanny, on which client.run runs it (by value)
        return dask_worker.status.name

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(1, timeout=60)
        deadline = time.monotonic() + 60
        while set(client.run(status, nanny=True).values()) != {"running"}:
            assert time.monotonic() < deadline, "the dask worker's nanny never got to running"
            time.sleep(0.05)


def _kill_first_worker(out: Path, sha256: str, proc: subprocess.Popen) -> int:
    """SIGKILL the process that is working on that capture (its scratch folder names it); its pid."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        for scratch in (out / "captures").glob(f".{sha256}.*.tmp"):
            pid = int(scratch.name.rsplit(".", 2)[-2])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.01)
    raise AssertionError("the capture was never begun")


@pytest.mark.parametrize("engine", ["local", "dask-scheduler"])
def test_a_killed_workers_capture_is_done_again(engine: str, tmp_path: Path) -> None:
    need_module("pyarrow")
    big = CAPTURES / "img-off.pcapng"  # the largest: seconds of work to be killed in
    procs = []
    args = ["--workers", "1"]
    if engine == "dask-scheduler":
        need_module("distributed")
        port = _free_port()
        procs.append(_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"))
        procs.append(_dask("worker", f"tcp://127.0.0.1:{port}", "--nworkers", "1", "--nthreads", "1",
                           "--no-dashboard"))
        args = ["--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"]
    try:
        if procs:
            _worker_ready(args[-1])
        run = subprocess.Popen(["spicetool", "batch", "-q", str(big), str(CAPTURES / "typing.pcapng"),
                                "-o", str(tmp_path), *args], stderr=subprocess.PIPE, text=True)
        killed = _kill_first_worker(tmp_path, sha(big), run)
        _, err = run.communicate(timeout=300)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    assert run.returncode == 0 and "2 capture(s) done" in err, err
    marker = json.loads((tmp_path / "captures" / sha(big) / "done.json").read_text())
    assert marker["status"] == "ok" and marker["pid"] != killed
    assert {r["capture"] for r in read(tmp_path).to_pylist()} == {str(big), str(CAPTURES / "typing.pcapng")}


def test_ctrl_c_leaves_a_dataset_and_a_rerun_finishes(tmp_path: Path) -> None:
    pq = need_module("pyarrow.parquet")
    ds = need_module("pyarrow.dataset")
    # the third takes seconds: the interrupt comes while it is read
    names = ["typing.pcapng", "mid-session.pcap", "img-off.pcapng", "resize.pcapng", "password.pcap"]
    paths = [str(CAPTURES / n) for n in names]
    out = tmp_path / "out"
    run = subprocess.Popen(["spicetool", "batch", "-q", *paths, "-o", str(out), "--workers", "1"],
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("captures/*/done.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    done = {json.loads(p.read_text())["capture"] for p in out.glob("captures/*/done.json")}
    assert 1 <= len(done) < len(names)
    assert {r["capture"] for r in pq.read_table(out / "channels.parquet").to_pylist()} == done
    assert {r["capture"] for r in ds.dataset(out / "parts", format="parquet").to_table().to_pylist()} == done
    again = batch(*paths, "-o", str(out), "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert f"{len(names) - len(done)} capture(s) done" in again.stderr
    assert f"{len(done)} done before (skipped)" in again.stderr
    assert {r["capture"] for r in pq.read_table(out / "channels.parquet").to_pylist()} == set(paths)


def _frames(path: Path) -> int:
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_render_writes_the_video_of_spicetool_render(tmp_path: Path) -> None:
    need_module("pyarrow")
    cap = CAPTURES / "typing.pcapng"
    (tmp_path / "junk.pcap").write_bytes(b"\x00" * 64)
    r = batch(str(cap), str(tmp_path / "junk.pcap"), "-o", str(tmp_path / "out"), "--render", "--workers", "1")
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr  # the junk fails, without a video
    folder = tmp_path / "out" / "captures" / sha(cap)
    marker = json.loads((folder / "done.json").read_text())
    assert marker["status"] == "ok" and "video.mp4" in marker["files"] and not marker["warnings"], marker
    own = tmp_path / "x.mp4"
    alone = subprocess.run(["spicetool", "render", str(cap), "-o", str(own), "-q"], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    n = _frames(own)
    assert n > 1 and _frames(folder / "video.mp4") == n
    junk = tmp_path / "out" / "captures" / sha(tmp_path / "junk.pcap")
    assert sorted(p.name for p in junk.iterdir()) == ["done.json", "error.txt"]


def test_an_unreachable_scheduler_is_one_line_and_exit_3(tmp_path: Path) -> None:
    need_module("distributed")
    port = _free_port()  # nothing listens there
    r = subprocess.run(["spicetool", "batch", "-q", str(CAPTURES / "typing.pcapng"), "-o", str(tmp_path),
                        "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert r.returncode == 3 and r.stderr.startswith(f"error: cannot reach the Dask scheduler tcp://127.0.0.1:{port}: ")
    assert len(r.stderr.splitlines()) == 1 and not list(tmp_path.glob("captures/*")), r.stderr
