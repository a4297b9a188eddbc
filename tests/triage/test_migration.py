"""Migration on real sessions: two QEMUs (the target started with -incoming), spicy on the source, tshark on
both SPICE ports; the source's monitor tells spice-server where the client should follow
(`client_migrate_info`, which sends MIGRATE_BEGIN) and migrates the guest. Followed to a live target it is
information; pointed at a port where nothing listens, the client cannot connect (MIGRATE_CONNECT_ERROR), is
told to switch host anyway and the session ends: that is the answer to "the console just died"."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT, above_info, diagnose, need_program

from spicetool.capture import open_capture

sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402

PORTS, MIGRATION_PORTS, DISPLAYS = range(5960, 5970), range(4440, 4450), range(60, 66)
SETTLE_S = 3.0  # the session running on the source before the migration
MIGRATED_S = 15.0  # QEMU's migration of a firmware guest takes well under a second; a loaded machine, longer




def migrate(tmp: Path, live_target: bool) -> tuple[Path, float, int, int]:
    """(capture, seconds from its first packet to client_migrate_info, source port, the port the client is
    told to follow to)."""
    for program in ("qemu-system-x86_64", "Xvfb", "spicy", "tshark"):
        need_program(program)
    cap = tmp / "migration.pcapng"
    src_port = peers.pick_port(PORTS)
    dst_port = peers.pick_port([p for p in PORTS if p != src_port])
    dead_port = peers.pick_port([p for p in PORTS if p not in (src_port, dst_port)])
    incoming = peers.pick_port(MIGRATION_PORTS)
    quiet = dict(usbredir=False, webdav=False, serial_port=False, audio=False)
    (tmp / "src").mkdir()
    (tmp / "dst").mkdir()
    src = peers.QemuSettings(port=src_port, monitor=str(tmp / "src.monitor"), **quiet)
    dst = peers.QemuSettings(port=dst_port, monitor=str(tmp / "dst.monitor"), incoming=incoming, **quiet)
    follow = dst_port if live_target else dead_port
    with peers.Qemu(src, tmp / "src") as qs, peers.Qemu(dst, tmp / "dst"), \
            peers.Xvfb(peers.pick_display(DISPLAYS), log_dir=tmp) as xv, \
            peers.Tshark([src_port, dst_port], cap, log_dir=tmp):
        with peers.Spicy(xv.display, src_port, log_dir=tmp, min_channels=4):
            time.sleep(SETTLE_S)
            told = time.time()
            qs.hmp(f"client_migrate_info spice 127.0.0.1 {follow}")
            qs.hmp(f"migrate -d tcp:127.0.0.1:{incoming}")
            peers.wait_until(lambda: "Migration status: completed" in qs.hmp("info migrate"), MIGRATED_S,
                             "the guest's migration", qs.proc, interval=0.3)
            time.sleep(3.0)  # the client follows (or fails to)
    first = next(iter(open_capture(str(cap)))).time
    return cap, told - first, src_port, follow


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    return migrate(tmp_path_factory.mktemp("migrated"), live_target=True)


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory):
    return migrate(tmp_path_factory.mktemp("migration-unreachable"), live_target=False)


def test_a_migration_the_client_follows_is_information(followed) -> None:
    cap, told, src_port, dst_port = followed
    code, found = diagnose(cap)
    assert code == 0 and not above_info(found), above_info(found)
    (m,) = [f for f in found if f["kind"] == "migration"]
    assert m["evidence"]["target"] == f"127.0.0.1:{dst_port}" and m["evidence"]["source"].endswith(f":{src_port}")
    assert told <= m["time"] <= told + 1.0, (m, told)
    # and the client is on the target: a session there with its display
    stats = json.loads(subprocess.run([sys.executable, "-m", "spicetool", "stats", "--json", str(cap)],
                                      capture_output=True, text=True, check=True).stdout)
    on_target = [s for s in stats["sessions"] if any(c["server"].endswith(f":{dst_port}") and c["channel"] == "display"
                                                    and c["wire_bytes"]["server"] > 0 for c in s["channels"])]
    assert on_target, [(s["session"], [c["server"] for c in s["channels"]]) for s in stats["sessions"]]


def test_a_migration_to_an_unreachable_target_is_migration_failed(unreachable) -> None:
    cap, told, src_port, dead_port = unreachable
    code, found = diagnose(cap)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "migration_failed" and f["severity"] == "error", found
    assert f["evidence"]["failed"] == "migrate_connect_error" and f["evidence"]["target"] == f"127.0.0.1:{dead_port}"
    assert told <= f["time"] <= told + 1.0, (f, told)
    assert f["evidence"]["source_closed"] is not None and f["time"] <= f["until"] == f["evidence"]["source_closed"]
    assert "switch host" in f["title"], f
