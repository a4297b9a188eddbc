"""Lost segments (issue 12): a gap inside a message keeps the framing and damages only that message;
a gap over a header is resynchronised over. Every pixel reported known equals the truth, and no
more is reported unknown than the draws that lost bytes covered.

Besides the corpus's cut capture, the test cuts frames of its own out of the intact original with
editcap (inside a big image, several in a row, over headers). What was lost is worked out here on
its own terms: tshark's TCP sequence numbers say which stream bytes each dropped frame held, the
intact capture's messages say which draws those bytes belonged to.
"""
from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.capture import PcapWriter, open_capture, open_records
from spicetool.render.frames import picture_at
from spicetool.render.session import RenderStats, SessionScreen
from tests.support import deployment_capture, fresh_deployment, need_program

from .corpus import CAPTURES, capture_path, settings

# frames of the intact capture (server -> client, display channel) to drop, and what they hit
CUTS = {
    "corpus": None,  # the corpus's own cut capture: frames 105 135 162, inside the full-screen image
    "image-tail": [253],  # the last 18716 bytes of an 84 KB BITMAP draw (the clock)
    "image-run": [108, 109, 111, 112, 114],  # five segments in a row inside the full-screen image
    "header-start": [252],  # the segment that starts with a draw's header (its box is lost)
    "small-draws": [273],  # nine whole small draws, headers and all
    "across": [323, 324, 326, 327],  # an image's end, then copy_bits and fills: one gap over several
}
# the recorder's own cuts: the shipped session, and one recorded fresh with other settings (QUIC, a 900x600
# photo, two segments dropped inside it; tests/support.py FRESH_DEPLOYMENT)
RECORDED = {"corpus": "lost-segments", **dict(fresh_deployment(("fresh", "fresh:fresh-lost-segments")))}
# cuts in compressed sessions of the shipped corpus, the frames chosen by a rule (see _chosen)
MSS = 1448
CORPUS_CUTS = [(name, rule) for name in ("img-lz", "img-quic", "img-glz") for rule in ("inside", "run", "header")]


@dataclass
class Cut:
    path: Path
    ranges: list[tuple[int, int]]  # stream offsets [a, b) of the display channel's server bytes lost
    source: str = "lost-segments"


@dataclass
class Source:
    intact: Path
    truth: Path
    settings: dict


def _source(name: str) -> Source:
    if name in RECORDED.values():
        return Source(deployment_capture(f"{name}.intact.pcapng"), deployment_capture(f"{name}.png"),
                      json.loads(deployment_capture(f"{name}.json").read_text()))
    path = capture_path(name)
    if path is None:
        pytest.skip(f"{name} not in the corpus")
    return Source(_resegmented(path), CAPTURES / f"{name}.png", settings(name))


@functools.cache
def _scratch() -> Path:
    return Path(_SCRATCH.name)


_SCRATCH = tempfile.TemporaryDirectory(prefix="spicetool-lost-")


@functools.cache
def _resegmented(path: Path) -> Path:
    """The capture with the display channel's server segments cut to Ethernet's MSS (1448 bytes), as
    a capture taken off a network holds them (loopback's are up to 64 KB): a lost one then falls
    inside a compressed image, not around whole messages. Written with the project's pcap writer."""
    display = next(r.channel for r in open_records(str(path)) if r.channel.channel == "display")
    out = _scratch() / f"{path.stem}.mss.pcap"
    with open(out, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(str(path)):
            pieces = [seg.payload[i:i + MSS] for i in range(0, len(seg.payload), MSS)] or [b""]
            seq = seg.seq
            for piece in pieces if (seg.src, seg.dst) == (display.server, display.client) else [seg.payload]:
                w.segment(seg.time, seg.src, seg.dst, seq, seg.ack, seg.flags, piece)
                seq = (seq + len(piece)) & 0xFFFFFFFF
    return out


@functools.cache
def _intact(name: str = "lost-segments") -> tuple[list, dict[int, tuple[int, int]]]:
    """The intact capture's display messages from the server, and its display server frames:
    frame -> (stream offset, length), from tshark's relative sequence numbers."""
    src = _source(name)
    port = int(src.settings["server"]["address"].rsplit(":", 1)[1])
    msgs = [r for r in open_records(str(src.intact)) if r.channel.channel == "display"
            and r.direction.value == "server" and r.layer in ("link", "message")]
    client_port = int(msgs[0].channel.client.rsplit(":", 1)[1])
    out = subprocess.run([need_program("tshark"), "-r", str(src.intact), "-o", "tcp.relative_sequence_numbers:TRUE",
                          "-Y", f"tcp.srcport=={port} && tcp.dstport=={client_port} && tcp.len>0",
                          "-T", "fields", "-e", "frame.number", "-e", "tcp.seq", "-e", "tcp.len"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    frames = {int(f): (int(s) - 1, int(n)) for f, s, n in (line.split() for line in out.splitlines())}
    assert min(frames.values())[0] == 0 and msgs[0].event.offset == 0  # both count from the first byte
    return [m for m in msgs if m.layer == "message"], frames


def _span(m) -> tuple[int, int, int]:
    """(header start, body start, end) of a message in its stream."""
    return m.event.offset, m.event.offset + m.event.header_size, m.event.offset + m.event.header_size + m.size


def _chosen(name: str, rule: str) -> list[int]:
    """Frames to drop by a rule: "inside" the middle segment within the largest draw's body; "run"
    the last two segments of that draw and the two after it (past its end); "header" the middle one
    of the segments that hold a draw's header (after the first picture)."""
    msgs, frames = _intact(name)
    draws = [m for m in msgs if isinstance(m.fields, dict) and isinstance(m.fields.get("base"), dict)]
    order = sorted(frames)
    big = max(draws, key=lambda m: m.size)
    _, body, end = _span(big)
    within = [f for f in order if body <= frames[f][0] and sum(frames[f]) <= end]
    if rule == "inside":
        assert within, f"{name}: no segment inside its largest draw"
        return [within[len(within) // 2]]
    if rule == "run":
        last = order.index(within[-1]) if within else order.index(next(f for f in order if sum(frames[f]) >= end))
        return order[max(last - 1, 0):last + 3]
    starts = [f for f in order if any(frames[f][0] <= _span(m)[0] < sum(frames[f]) for m in draws)
              and frames[f][0] > _span(draws[0])[2]]
    return [starts[len(starts) // 2]]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@functools.cache
def _cut(name: str, tmp: Path) -> Cut:
    source = "lost-segments"
    if "/" in name:  # NAME/RULE: a corpus session cut by a rule
        source, rule = name.split("/")
        dropped = _chosen(source, rule)
    elif name in RECORDED:
        source = RECORDED[name]
        meta = json.loads(deployment_capture(f"{source}.json").read_text())
        dropped = meta["capture"]["lost_segments"]["dropped_frames"]
    else:
        dropped = CUTS[name]
    _, frames = _intact(source)
    if name in RECORDED:
        path = deployment_capture(f"{source}.pcapng")
    else:
        path = tmp / f"{name.replace('/', '-')}.pcapng"
        subprocess.run([need_program("editcap"), str(_source(source).intact), str(path), *map(str, dropped)],
                       check=True, timeout=120)
    assert all(f in frames for f in dropped)
    return Cut(path, _merged([(frames[f][0], sum(frames[f])) for f in dropped]), source)


@pytest.fixture(scope="module")
def cuts_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cuts")


def _damaged(cut: Cut) -> tuple[list, np.ndarray, list[bool]]:
    """The intact capture's draws whose bytes overlap the lost ranges, the union of their boxes on
    the screen, and per lost range whether it lies inside one message's body (framing kept)."""
    msgs, _ = _intact(cut.source)
    size = next((int(m.fields["width"]), int(m.fields["height"])) for m in msgs if m.type == "surface_create")
    area = np.zeros(size[::-1], bool)
    hit, inside = [], []
    for a, b in cut.ranges:
        over = [m for m in msgs if m.event.offset < b and m.event.offset + m.event.header_size + m.size > a]
        body = [m for m in over if m.event.offset + m.event.header_size <= a
                and b <= m.event.offset + m.event.header_size + m.size]
        inside.append(len(body) == 1)
        hit += over
    for m in hit:
        base = m.fields.get("base") if isinstance(m.fields, dict) else None
        if isinstance(base, dict) and int(base["surface_id"]) == 0:
            box = base["box"]
            area[max(box["top"], 0):max(box["bottom"], 0), max(box["left"], 0):max(box["right"], 0)] = True
    return hit, area, inside


def _render(path: Path):
    stats, screen = RenderStats(), SessionScreen()
    frame = picture_at(str(path), None, stats=stats, screen=screen)
    unknown = screen.unknown()
    return frame.image, (np.zeros(frame.image.shape[:2], bool) if unknown is None else unknown), stats


def _truth(source: str = "lost-segments") -> np.ndarray:
    return np.asarray(Image.open(_source(source).truth).convert("RGB"))


@pytest.mark.parametrize("name", list(CUTS) + list(RECORDED.keys() - CUTS.keys())
                         + [f"{n}/{r}" for n, r in CORPUS_CUTS])
def test_gaps_framing_and_known_pixels(name: str, cuts_dir: Path) -> None:
    cut = _cut(name, cuts_dir)
    hit, area, inside = _damaged(cut)
    assert hit, "the cut must hit display messages"
    gaps = [r for r in open_records(str(cut.path)) if r.layer == "gap" and r.channel.channel == "display"
            and r.direction.value == "server"]
    # one gap per lost run, of its exact length; the framing kept exactly where the run lies in one body
    assert [g.size for g in gaps] == [b - a for a, b in cut.ranges]
    assert [g.fields["framing"] == "kept" for g in gaps] == inside
    img, unknown, stats = _render(cut.path)
    truth = _truth(cut.source)
    mismatched = int((img != truth).any(axis=2)[~unknown].sum())
    print(f"{name}: lost {[b - a for a, b in cut.ranges]} bytes, framing kept {inside}, {len(hit)} messages hit;"
          f" known pixels differing {mismatched}, unknown {unknown.mean():.2%}, damaged draws' area {area.mean():.2%}")
    assert mismatched == 0, f"{mismatched} known pixels differ from the truth"
    assert stats.unknown_share == pytest.approx(unknown.mean())
    if all(inside):  # the draws' boxes are known: no more unknown than they covered
        assert not (unknown & ~area).any() and stats.unknown_share <= area.mean()


@pytest.mark.parametrize("name", RECORDED)
def test_framing_kept_messages_are_the_intact_ones(name: str, cuts_dir: Path) -> None:
    """On a cut whose gaps all lie inside messages, the same messages come out, only the damaged ones differ."""
    cut = _cut(name, cuts_dir)
    intact, _ = _intact(cut.source)
    damaged = [r for r in open_records(str(cut.path)) if r.layer == "message" and r.channel.channel == "display"
               and r.direction.value == "server"]
    assert [(r.type, r.size) for r in intact] == [(r.type, r.size) for r in damaged]
    hurt = [i for i, r in enumerate(damaged) if r.event.lost]
    assert hurt and all(intact[i].event.body == damaged[i].event.body for i in range(len(intact)) if i not in hurt)
    assert sum(b - a for i in hurt for a, b in damaged[i].event.lost) == sum(b - a for a, b in cut.ranges)


@pytest.mark.parametrize("source", RECORDED.values())
def test_intact_capture_has_nothing_unknown(source: str) -> None:
    img, unknown, stats = _render(deployment_capture(f"{source}.intact.pcapng"))
    assert not unknown.any() and stats.unknown_share == 0.0
    assert (img == _truth(source)).all()


def _spicetool(*args: str) -> subprocess.CompletedProcess:
    import os
    import sys
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.parametrize("name", ["corpus", "across"])
def test_dissect_says_each_gap_once(name: str, cuts_dir: Path) -> None:
    cut = _cut(name, cuts_dir)
    _, _, inside = _damaged(cut)
    r = _spicetool("dissect", str(cut.path))
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if "tcp_gap" in x]
    assert len(lines) == len(cut.ranges)
    for line, (a, b), kept in zip(lines, cut.ranges, inside):
        assert line.endswith(f"({b - a} bytes lost)")
        assert ("the framing kept" in line) == kept and ("resynchronising" in line) == (not kept)
    if all(inside):  # the message the gaps were in: said damaged, with how much it lost
        hit = {id(m): m for m in _damaged(cut)[0]}.values()
        damaged = [x for x in r.stdout.splitlines() if "[damaged:" in x]
        assert len(damaged) == len(hit)
        assert sum(int(x.split("[damaged: ")[1].split()[0]) for x in damaged) == sum(b - a for a, b in cut.ranges)


def test_render_unknown_transparent(cuts_dir: Path, tmp_path: Path) -> None:
    cut = _cut("corpus", cuts_dir)
    _, unknown, stats = _render(cut.path)
    out = tmp_path / "known.png"
    r = _spicetool("render", str(cut.path), "--last", "--unknown", "transparent", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert f"unknown: {stats.unknown_share:.2%} of the screen" in r.stderr
    with Image.open(out) as img:
        assert img.mode == "RGBA"
        rgba = np.asarray(img)
    assert ((rgba[..., 3] == 0) == unknown).all() and unknown.any()
    assert (rgba[..., :3][~unknown] == _truth()[~unknown]).all()
    pattern = tmp_path / "pattern.png"
    assert _spicetool("render", str(cut.path), "--last", "-q", "-o", str(pattern)).returncode == 0
    with Image.open(pattern) as img:  # the default: RGB, the placeholder pattern where unknown
        assert img.mode == "RGB" and (np.asarray(img)[unknown] != _truth()[unknown]).any()
    bad = _spicetool("render", str(cut.path), "--unknown", "transparent", "-o", str(tmp_path / "v.mp4"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()[-1]) < 120


def test_stats_and_report_say_how_much_is_unknown(cuts_dir: Path, tmp_path: Path) -> None:
    for name in ("corpus", "header-start"):
        cut = _cut(name, cuts_dir)
        _, _, stats = _render(cut.path)
        r = _spicetool("stats", "--json", str(cut.path))
        assert r.returncode == 0, r.stderr
        (s,) = json.loads(r.stdout)["sessions"]
        assert s["unknown"]["share"] == pytest.approx(stats.unknown_share, abs=1e-5)
        assert s["unknown"]["since"] == pytest.approx(stats.unknown_since, abs=1e-3)
    page = tmp_path / "r.html"
    assert _spicetool("report", str(_cut("corpus", cuts_dir).path), "-o", str(page)).returncode == 0
    assert f"{stats.unknown_share:.1%}" in _spicetool("stats", str(cut.path)).stdout
    assert "screen unknown" in page.read_text()


def test_stats_of_the_intact_capture_say_nothing_unknown() -> None:
    r = _spicetool("stats", "--json", str(deployment_capture("lost-segments.intact.pcapng")))
    (s,) = json.loads(r.stdout)["sessions"]
    assert s["unknown"] == {"share": 0.0, "since": None}


@pytest.mark.parametrize("name", sorted({n for n, _ in CORPUS_CUTS}))
def test_resegmented_corpus_sessions_render_as_before(name: str) -> None:
    """The sources of the corpus cuts: cut to the MSS, nothing is lost or unknown, the truth exactly."""
    _, frames = _intact(name)
    assert max(n for _, n in frames.values()) == MSS
    img, unknown, stats = _render(_source(name).intact)
    assert not unknown.any() and stats.unknown_share == 0.0
    assert (img == _truth(name)).all()
