"""Video stream frames are shown when the client's multimedia clock reaches their time, not when
they arrive: on the corpus' real MJPEG stream (Xspice stamps frames 400 ms ahead of the clock it
gives the client in MAIN_INIT), with that capture's clock moved so frames are late, and with its
frames re-encoded as VP8 (spice-gtk's GStreamer rule: nothing dropped, margin after arrival)."""
from __future__ import annotations

import io
from dataclasses import replace
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from spicetool.capture import Record
from spicetool.render import RenderStats, SessionScreen, frames, picture_at
from spicetool.render.frames import records_of

from .corpus import capture_path, sessions

NAME = "mjpeg-stream"


def _need() -> str:
    if NAME not in sessions():
        pytest.skip(f"{NAME} not in the corpus")
    return str(capture_path(NAME))


def _stream(cap: str) -> tuple[dict, list[tuple[float, float, np.ndarray]]]:
    """The stream's STREAM_CREATE and its frames as (arrival, due, RGB picture), seconds from the
    capture start; due is when spice-gtk's clock (set by MAIN_INIT, running since) reads the frame's time."""
    t0 = clock = create = None
    out = []
    for rec in records_of(cap):
        t0 = rec.time if t0 is None else t0
        if rec.layer != "message" or rec.direction.name != "SERVER":
            continue
        if rec.type == "init" and rec.channel.channel_type == 1:
            clock = (rec.fields["multi_media_time"], rec.time - t0)
        elif rec.type == "multi_media_time":
            clock = (rec.fields["time"], rec.time - t0)
        elif rec.type == "stream_create":
            create = rec.fields
        elif rec.type == "stream_data":
            assert clock is not None
            due = clock[1] + (rec.fields["base"]["multi_media_time"] - clock[0]) / 1000
            rgb = np.asarray(Image.open(io.BytesIO(bytes(rec.fields["data"]))).convert("RGB"))
            out.append((rec.time - t0, due, rgb))
    assert create is not None and len(out) > 50
    return create, out


def test_frames_are_shown_at_their_multimedia_time() -> None:
    cap = _need()
    create, stream = _stream(cap)
    margins = [due - arrival for arrival, due, _ in stream]
    assert min(margins) > 0.3  # the server stamps frames ahead: drawing on arrival would be early
    d = create["dest"]
    area = (slice(d["top"], d["bottom"]), slice(d["left"], d["right"]))
    stats = RenderStats()
    checked = early = 0
    for t, img in frames(cap, fps=25, start=1.5, end=5.0, stats=stats):
        shown = [rgb for _, due, rgb in stream if due <= t]
        arrived = [rgb for arrival, _, rgb in stream if arrival <= t]
        if not shown:
            continue
        # the frame due then, but for a few pixels the server drew over the stream (72 of 76800)
        same = (img[area] == shown[-1]).all(axis=2).mean()
        assert same > 0.998, f"at {t:.2f}s the stream area is not the frame due then"
        checked += 1
        early += bool((img[area] == arrived[-1]).all(axis=2).mean() < 0.9)
    assert checked >= 50 and early >= 40  # most ticks: the newest arrived frame is not yet on screen


def test_per_change_pictures_come_at_the_frames_times() -> None:
    cap = _need()
    _, stream = _stream(cap)
    dues = {round(due, 3) for _, due, _ in stream}
    times = [round(t, 3) for t, _ in frames(cap, None, start=1.0, end=5.0)]
    on_due = sum(t in dues for t in times)
    assert on_due >= 0.9 * sum(1.0 <= d <= 5.0 for d in dues)  # a picture at (nearly) every frame's time


def _clock_moved(cap: str, ms: int) -> Iterator[Record]:
    for rec in records_of(cap):
        if rec.type == "init" and rec.channel.channel_type == 1 and rec.direction.name == "SERVER":
            rec = replace(rec, fields={**rec.fields, "multi_media_time": rec.fields["multi_media_time"] + ms})
        yield rec


def test_frames_late_for_the_clock_are_dropped_as_the_client_drops_them() -> None:
    cap = _need()
    _, stream = _stream(cap)
    on_time = RenderStats()
    normal = picture_at(cap, 5.0, stats=on_time)
    late = RenderStats()
    shifted = picture_at(_clock_moved(cap, 1000), 5.0, stats=late)  # the client's clock 1 s ahead
    assert normal is not None and shifted is not None
    assert on_time.stream_frames == sum(due <= 5.0 for _, due, _ in stream)  # the frames due by then, all
    assert not any("too late" in w for w in on_time.warnings)
    assert late.stream_frames == 0
    assert sum(n for w, n in late.warnings.items() if "too late" in w) == sum(a <= 5.0 for a, _, _ in stream)
    # 300 ms ahead: frames still 100 ms early are shown, 300 ms sooner than with the real clock
    soon = picture_at(_clock_moved(cap, 300), 2.0)
    expected = [rgb for arrival, due, rgb in stream if due - 0.3 <= 2.0][-1]
    assert soon is not None and (soon.image[360:600, 360:680] == expected).all(axis=2).mean() > 0.998


def _as_vp8(cap: str, streaming_mode: bool) -> Iterator[Record]:
    """The capture's stream as VP8, as a GStreamer-encoding server would send it: the same frames
    (re-encoded with FFmpeg), sizes and times; optionally on a streaming-mode surface."""
    from fractions import Fraction

    import av
    enc = None
    n = 0
    for rec in records_of(cap):
        if rec.type == "surface_create" and streaming_mode:
            rec = replace(rec, fields={**rec.fields, "flags": rec.fields["flags"] | 2})
        elif rec.type == "stream_create":
            rec = replace(rec, fields={**rec.fields, "codec_type": "VP8"})
        elif rec.type == "stream_data":
            rgb = np.asarray(Image.open(io.BytesIO(bytes(rec.fields["data"]))).convert("RGB"))
            if enc is None:
                enc = av.CodecContext.create("libvpx", "w")
                enc.width, enc.height, enc.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                enc.bit_rate, enc.time_base = 4_000_000, Fraction(1, 25)
                enc.options = {"deadline": "realtime", "lag-in-frames": "0"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = n
            n += 1
            data = b"".join(bytes(p) for p in enc.encode(frame))
            rec = replace(rec, fields={**rec.fields, "data": data, "data_size": len(data)})
        yield rec


@pytest.mark.parametrize("streaming_mode", [False, True])
def test_other_codecs_show_every_frame_after_its_margin(streaming_mode: bool) -> None:
    """spice-gtk's GStreamer path drops nothing: a frame is shown its margin (time - clock) after it
    arrives, or at once on a streaming-mode surface while no sound plays."""
    cap = _need()
    _, stream = _stream(cap)
    stats = RenderStats()
    when = 0 if streaming_mode else 1  # shown at (arrival, due)[when]; the other is the wrong time
    for t, img in frames(_as_vp8(cap, streaming_mode), fps=25, start=1.5, end=4.0, stats=stats):
        expected = [s[2] for s in stream if s[when] <= t][-1]
        wrong = [s[2] for s in stream if s[1 - when] <= t][-1]
        shown = img[360:600, 360:680].astype(int)  # VP8 is lossy: nearer the expected frame than the other
        assert (expected == wrong).all() or np.abs(shown - expected).mean() < np.abs(shown - wrong).mean()
    assert stats.stream_codecs == {"VP8"} and stats.stream_frames >= 60


def test_frames_waiting_for_a_far_time_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged time an hour ahead: the frames wait, but only so many (memory stays bounded)."""
    from spicetool.render import streams
    cap = _need()
    _, stream = _stream(cap)
    monkeypatch.setattr(streams, "MAX_PENDING", 10)

    def far() -> Iterator[Record]:
        for rec in records_of(cap):
            if rec.type == "stream_data":
                base = {**rec.fields["base"], "multi_media_time": rec.fields["base"]["multi_media_time"] + 3_600_000}
                rec = replace(rec, fields={**rec.fields, "base": base})
            yield rec
    stats = RenderStats()
    for _ in frames(far(), fps=5, stats=stats):
        pass
    assert stats.stream_frames == 0
    assert sum(n for w, n in stats.warnings.items() if "waiting" in w) == len(stream) - 10
    screen = SessionScreen()
    waiting = []
    for rec in far():
        screen.feed(rec)
        waiting.append(sum(len(s.pending) for s in screen.streams.streams.values()))
    assert max(waiting) == 10
    assert screen.streams.pending_bytes == 0  # the stream was destroyed: nothing left waiting
