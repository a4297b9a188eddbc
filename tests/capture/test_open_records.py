"""open_records, the one way in: each damage is one CaptureFailure with the line the commands
print and their exit code; a damaged capture gives what came before; selection and taps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import CAPTURES

import spicetool.capture as capture_package
from spicetool.capture import (
    EXIT_DAMAGED,
    EXIT_UNREADABLE,
    CaptureError,
    CaptureFailure,
    KeyLogError,
    open_capture,
    open_records,
)

TYPING = CAPTURES / "typing.pcapng"


def failure(path: Path, **kw) -> CaptureFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(CaptureFailure) as info:
        open_records(path, **kw)
    exc = info.value
    assert "\n" not in str(exc)
    return exc


def test_a_file_that_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("this is not a capture\n" * 10)
    exc = failure(path)
    assert isinstance(exc, CaptureError) and exc.exit_code == EXIT_UNREADABLE
    assert str(exc) == f"{path}: not a pcap or pcapng capture (starts with 74686973)"


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    path.write_bytes(b"")
    exc = failure(path)
    assert exc.exit_code == EXIT_UNREADABLE and str(exc) == f"{path}: empty or too short to be a capture"


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    exc = failure(tmp_path / "nope.pcap")
    assert exc.exit_code == EXIT_UNREADABLE and str(exc) == f"{tmp_path / 'nope.pcap'}: No such file or directory"
    exc = failure(tmp_path)
    assert exc.exit_code == EXIT_UNREADABLE and str(exc).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize("name", ["typing.pcapng", "img-glz.pcap"])
def test_a_truncated_capture_gives_what_came_before_then_its_failure(tmp_path: Path, name: str) -> None:
    data = (CAPTURES / name).read_bytes()
    cut = tmp_path / ("cut" + Path(name).suffix)
    cut.write_bytes(data[: len(data) * 3 // 4 + 3])  # inside a record
    records = open_records(cut)
    got = list(records)
    assert records.failure is not None and records.damage is not None
    assert records.failure.exit_code == EXIT_DAMAGED
    assert str(records.failure) == f"{cut}: {records.damage}"
    assert records.damage.startswith("capture truncated in frame ") and "\n" not in records.damage
    # the records of the frames before the last one read are those of the whole capture
    whole = list(open_records(CAPTURES / name))
    last = max(r.frame for r in got)
    before = [(r.frame, r.type, r.fields) for r in got if r.frame < last]
    assert len(before) > 5 and before == [(r.frame, r.type, r.fields) for r in whole[: len(before)]]
    assert 0 < records.bytes_read <= len(data) * 3 // 4 + 3 == records.size


def test_an_intact_capture_has_no_failure() -> None:
    records = open_records(TYPING)
    assert sum(1 for _ in records) > 100
    assert records.failure is None and records.damage is None
    assert records.bytes_read + 4 == records.size == TYPING.stat().st_size


def test_a_bad_key_log(tmp_path: Path) -> None:
    keys = tmp_path / "keys.log"
    keys.write_text("this is no key log\n")
    exc = failure(TYPING, keylog=str(keys))
    assert isinstance(exc, KeyLogError) and exc.exit_code == EXIT_UNREADABLE
    assert str(exc) == f"{keys}: not a TLS key log (no CLIENT_RANDOM or *_TRAFFIC_SECRET lines)"
    exc = failure(TYPING, keylog=str(tmp_path / "none.log"))
    assert str(exc) == f"{tmp_path / 'none.log'}: No such file or directory"
    # the key log is read first: its failure is the one said when both are bad
    assert str(failure(tmp_path / "nope.pcap", keylog=str(keys))).startswith(f"{keys}: ")
    # an empty key log is fine (a live peer may not have written it yet)
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert open_records(TYPING, keylog=str(empty)).keylog is not None


def test_a_stream_is_read_like_a_file() -> None:
    data = TYPING.read_bytes()
    from_stream = open_records(io.BytesIO(data), name="typing")
    assert [(r.frame, r.type) for r in from_stream] == [(r.frame, r.type) for r in open_records(TYPING)]
    assert from_stream.name == "typing" and from_stream.failure is None
    with pytest.raises(CaptureFailure, match="^typing: empty or too short"):
        open_records(io.BytesIO(b"\xd4\xc3"), name="typing")


def test_sessions_and_channels_select_records() -> None:
    everything = list(open_records(TYPING))
    inputs = list(open_records(TYPING, channels={"inputs"}))
    assert inputs
    assert [(r.frame, r.type) for r in inputs] == [(r.frame, r.type) for r in everything if r.channel.channel == "inputs"]
    first = [(r.frame, r.type) for r in everything if r.channel.session == 1]
    assert first and [(r.frame, r.type) for r in open_records(TYPING, sessions={1})] == first
    assert list(open_records(TYPING, sessions={99})) == []


def test_the_tap_sees_every_segment_before_its_records() -> None:
    seen: list[int] = []
    records = open_records(TYPING, tap=lambda seg: seen.append(seg.frame))
    for rec in records:
        assert rec.frame <= seen[-1]
    assert seen == [s.frame for s in open_capture(str(TYPING))]
    assert records.first_time == next(iter(open_capture(str(TYPING)))).time
    assert records.channels and all(ch.session is not None for ch in records.channels)


def test_records_are_read_once() -> None:
    records = open_records(TYPING)
    head = [rec for _, rec in zip(range(5), records)]
    rest = list(records)  # a second loop goes on where the first stopped
    whole = list(open_records(TYPING))
    assert [(r.frame, r.type) for r in head + rest] == [(r.frame, r.type) for r in whole]
    records = open_records(TYPING)
    next(records)
    records.close()
    assert list(records) == [] and records.reader is not None and records.reader.stream.closed


def test_the_package_names_what_it_exports_and_loads_it_on_use() -> None:
    assert sorted(capture_package.__all__) == sorted(capture_package._MODULE_OF)
    for name in capture_package.__all__:
        assert getattr(capture_package, name) is not None
    # a writer does not pull in the protocol stack (and numpy)
    code = ("import sys; from spicetool.capture import PcapWriter, Recording; "
            "print(sorted(m for m in ('spicetool.stack', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                         check=True)
    assert out.stdout.strip() == "[]"


def _kinds(records) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [(r.channel.client, r.direction.value, r.layer, r.type) for r in records]


def _with_secrets(source: Path, keys: bytes) -> bytes:
    """The capture's segments again, after a Decryption Secrets block holding `keys`."""
    from spicetool.capture import PcapngWriter

    out = io.BytesIO()
    writer = PcapngWriter(out)
    writer.secrets(keys)
    reader = open_capture(str(source))
    for s in reader:
        writer.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
    reader.close()
    return out.getvalue()


def test_a_capture_that_carries_its_own_secrets() -> None:
    """editcap --inject-secrets: the pcapng's Decryption Secrets decrypt its TLS without a key log file,
    alone or beside one; secrets for another session are said to lack this connection's."""
    from support import deployment_capture

    plain, keys = deployment_capture("tls-proxy-keylog.pcapng"), deployment_capture("tls-proxy-keylog.keys.log")
    with_file = _kinds(open_records(plain, keylog=str(keys)))
    assert sum(k[2] == "message" for k in with_file) > 300 and not any(k[3] == "tls_encrypted" for k in with_file)
    dsb = deployment_capture("tls-proxy-keylog.dsb.pcapng")
    assert _kinds(open_records(dsb)) == with_file
    assert _kinds(open_records(dsb, keylog=str(keys))) == with_file
    # the secrets of some other session, inside the capture
    other = b"".join(f"{label} {'ab' * 32} {'cd' * 48}\n".encode()
                     for label in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                   "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"))
    recs = list(open_records(io.BytesIO(_with_secrets(plain, other)), name="other.pcapng"))
    opaque = [r for r in recs if r.type == "tls_encrypted"]
    assert len(opaque) == 4 and not any(r.layer == "message" for r in recs)
    assert all("the capture's own key log (Decryption Secrets) lacks this connection's TLS 1.3 secrets"
               in r.fields["reason"] for r in opaque), opaque[0].fields
    # no secrets anywhere: the hint to pass a key log, as before
    recs = list(open_records(plain))
    assert all("no key log given" in r.fields["reason"] for r in recs if r.type == "tls_encrypted")
