"""pcap and pcapng, written and read back: real captures' segments through PcapWriter and
PcapngWriter come out of the reader as they went in, and decode to the same records; the
reader takes the other byte order and nanosecond pcaps, and pcapng Decryption Secrets blocks."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from support import CAPTURES, need_program

from spicetool.capture import (
    SECRETS_TLS_KEY_LOG,
    CaptureReader,
    PcapngWriter,
    PcapWriter,
    Segment,
    open_capture,
    open_records,
)
from spicetool.capture.frames import MAX_SEGMENT

# one classic pcap and one pcapng of the corpus, and the one with the largest segments
SOURCES = ["img-glz.pcap", "typing.pcapng", "img-off.pcapng"]
WRITERS = {"pcap": PcapWriter, "pcapng": PcapngWriter}


def segments(path: Path) -> list[Segment]:
    reader = open_capture(str(path))
    segs = list(reader)
    reader.close()
    assert reader.damage is None
    return segs


def written(segs: list[Segment], fmt: str) -> bytes:
    out = io.BytesIO()
    w = WRITERS[fmt](out)
    for s in segs:
        w.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
    return out.getvalue()


def as_written(segs: list[Segment]) -> list[tuple]:
    """What the writers make of segments: payloads cut at MAX_SEGMENT, times to the microsecond."""
    out = []
    for s in segs:
        seq, payload = s.seq, s.payload
        for off in range(0, max(len(payload), 1), MAX_SEGMENT):
            chunk = payload[off : off + MAX_SEGMENT]
            out.append((round(s.time, 6), s.src, s.dst, seq, s.ack, s.flags, chunk))
            seq = (seq + len(chunk)) & 0xFFFFFFFF
    return out


def key(segs: list[Segment]) -> list[tuple]:
    return [(round(s.time, 6), s.src, s.dst, s.seq, s.ack, s.flags, s.payload) for s in segs]


def record_keys(records) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(r.channel.index, r.channel.channel, r.channel.session, r.direction, r.layer, r.type, r.size,
             repr(r.fields)) for r in records]


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("name", SOURCES)
def test_round_trip_of_a_real_capture(name: str, fmt: str) -> None:
    segs = segments(CAPTURES / name)
    data = written(segs, fmt)
    reader = CaptureReader(io.BytesIO(data), "rewritten")
    assert reader.format == fmt
    again = list(reader)
    assert reader.damage is None and reader.bytes_read + 4 == len(data)
    assert [s.frame for s in again] == list(range(1, len(again) + 1))
    assert key(again) == as_written(segs)
    # what the stack makes of it is what it makes of the original
    assert record_keys(open_records(io.BytesIO(data))) == record_keys(open_records(CAPTURES / name))


def test_writers_cut_large_payloads_and_keep_the_sequence() -> None:
    payload = bytes(range(256)) * 600  # 153600 bytes: three frames
    for writer in WRITERS.values():
        out = io.BytesIO()
        end = writer(out).segment(5.25, "10.0.0.1:40000", "10.0.0.2:5900", 0xFFFFFF00, 7, 0x18, payload)
        assert end == (0xFFFFFF00 + len(payload)) & 0xFFFFFFFF
        got = list(CaptureReader(io.BytesIO(out.getvalue())))
        assert [len(s.payload) for s in got] == [MAX_SEGMENT, MAX_SEGMENT, len(payload) - 2 * MAX_SEGMENT]
        assert b"".join(s.payload for s in got) == payload
        assert [s.seq for s in got] == [0xFFFFFF00, (0xFFFFFF00 + MAX_SEGMENT) & 0xFFFFFFFF,
                                        (0xFFFFFF00 + 2 * MAX_SEGMENT) & 0xFFFFFFFF]
        assert all(s.time == 5.25 and s.ack == 7 and s.flags == 0x18 for s in got)


def _repacked_pcap(data: bytes, endian: str, nanoseconds: bool) -> bytes:
    """PcapWriter's little-endian microsecond pcap in another byte order and/or time unit."""
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, *struct.unpack_from("<HHiIII", data, 4))]
    off = 24
    while off < len(data):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, off)
        out.append(struct.pack(endian + "IIII", sec, usec * 1000 if nanoseconds else usec, caplen, origlen))
        out.append(data[off + 16 : off + 16 + caplen])
        off += 16 + caplen
    return b"".join(out)


@pytest.mark.parametrize("endian, nanoseconds", [(">", False), ("<", True), (">", True)])
def test_pcap_byte_orders_and_time_units(endian: str, nanoseconds: bool) -> None:
    segs = segments(CAPTURES / "img-glz.pcap")
    data = _repacked_pcap(written(segs, "pcap"), endian, nanoseconds)
    assert key(CaptureReader(io.BytesIO(data))) == as_written(segs)


def test_pcapng_decryption_secrets_are_kept_for_the_caller() -> None:
    segs = segments(CAPTURES / "typing.pcapng")
    keys = b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"  # 159 bytes: the block is padded
    out = io.BytesIO()
    w = PcapngWriter(out)
    w.secrets(keys)
    half = len(segs) // 2
    for s in segs[:half]:
        w.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
    w.secrets(b"other", kind=0x12345678)
    for s in segs[half:]:
        w.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
    reader = CaptureReader(io.BytesIO(out.getvalue()))
    segments_read = iter(reader)
    first = next(segments_read)
    assert first.frame == 1 and reader.secrets == [(SECRETS_TLS_KEY_LOG, keys)]  # read before the packets after it
    rest = list(segments_read)
    assert reader.damage is None
    assert reader.secrets == [(SECRETS_TLS_KEY_LOG, keys), (0x12345678, b"other")]
    assert key([first, *rest]) == as_written(segs)
    records = open_records(io.BytesIO(out.getvalue()))
    assert record_keys(records) == record_keys(open_records(CAPTURES / "typing.pcapng"))
    assert records.secrets == reader.secrets


def test_tshark_reads_what_the_writers_write(tmp_path: Path) -> None:
    """Both formats, the pcapng with a key log block ahead of its packets (as editcap writes one)."""
    tshark = need_program("tshark")
    import subprocess

    segs = segments(CAPTURES / "typing.pcapng")[:40]
    for fmt, writer in WRITERS.items():
        path = tmp_path / f"out.{fmt}"
        with open(path, "wb") as f:
            w = writer(f)
            if isinstance(w, PcapngWriter):
                w.secrets(b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n")
            for seg in segs:
                w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)
        r = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "tcp.len"], capture_output=True,
                           text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert [int(n) for n in r.stdout.split()] == [len(s.payload) for s in segs]


def _after_section_header(data: bytes, block: bytes) -> bytes:
    end = struct.unpack_from("<I", data, 4)[0]
    return data[:end] + block + data[end:]


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[: len(d) // 2 + 3], "capture truncated in frame"),
    (lambda d: d[:30], "capture truncated in a section header after frame 0"),
    # an interface block whose body is too short to hold its link type
    (lambda d: _after_section_header(d, struct.pack("<III", 1, 12, 12)), "corrupt interface block after frame 0"),
    (lambda d: _after_section_header(d, struct.pack("<III", 6, 13, 13)), "corrupt block (length 13) after frame 0"),
    (lambda d: _after_section_header(d, struct.pack("<IIII", 10, 16, 0x544C534B, 16)),
     "corrupt decryption secrets block after frame 0"),
])
def test_pcapng_damage_ends_the_reading_with_a_line(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    data = damage(written(segments(CAPTURES / "typing.pcapng"), "pcapng"))
    reader = CaptureReader(io.BytesIO(data), "damaged")
    list(reader)
    assert reader.damage is not None and reader.damage.startswith(message), reader.damage
