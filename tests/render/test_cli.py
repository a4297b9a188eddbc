"""`spicetool render` end to end on the real corpus: videos open in ffprobe, audio is there, errors are one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import need_program  # tests/conftest.py: a skip here, a failure under CI=true
from spicetool.cli import main
from spicetool.render import RenderStats, frames, picture_at

from .corpus import capture_path, sessions

NAMES = sessions()


def _need(name: str) -> str:
    if name not in NAMES:
        pytest.skip(f"{name} not in the corpus")
    return str(capture_path(name))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spicetool", "render", *args], capture_output=True, text=True,
                          timeout=600)


def _probe(path: Path) -> dict:
    ffprobe = need_program("ffprobe")
    out = subprocess.run([ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_mp4_has_the_capture_duration_and_its_audio(tmp_path: Path) -> None:
    cap = _need("agent-audio")
    out = tmp_path / "session.mp4"
    r = _run(cap, "-o", str(out), "--fps", "10")
    assert r.returncode == 0, r.stderr
    info = _probe(out)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert kinds["video"]["codec_name"] == "h264"
    assert (int(kinds["video"]["width"]), int(kinds["video"]["height"])) == (1024, 768)
    assert kinds["audio"]["codec_name"] == "aac"
    end = picture_at(cap, None).time  # the capture's last record
    stats = RenderStats()
    first = next(iter(frames(cap, fps=10, stats=stats))).time  # the first complete picture
    # the video runs from the first picture to the end of the capture, at 10 frames a second
    duration = float(info["format"]["duration"])
    assert abs(duration - (end - first)) <= 0.2
    # unchanged pictures are held, not encoded again (variable frame rate): the track still
    # lasts to the last tick, and has fewer pictures than ticks
    assert abs(float(kinds["video"]["duration"]) - (end - first)) <= 0.2
    assert 1 <= int(kinds["video"]["nb_frames"]) < (end - first) * 10 - 2
    assert abs(float(kinds["audio"]["duration"]) - float(kinds["video"]["duration"])) < 1.5
    assert "frames" in r.stderr and "audio: RAW 48000 Hz" in r.stderr


def test_mp4_audio_is_the_440_hz_tone(tmp_path: Path) -> None:
    import av
    cap = _need("agent-audio")
    out = tmp_path / "tone.mp4"
    assert _run(cap, "-o", str(out), "--fps", "5", "-q").returncode == 0
    with av.open(str(out)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) if f.format.is_planar is False else f.to_ndarray()[0]
                                  for f in c.decode(audio=0)])
        rate = c.streams.audio[0].rate
    loud = samples[np.abs(samples) > 0.01 * np.abs(samples).max()]
    assert loud.size > rate  # more than a second of sound
    spectrum = np.abs(np.fft.rfft(loud[: rate * 2]))
    peak = np.argmax(spectrum) * rate / min(loud.size, rate * 2)
    assert abs(peak - 440) < 5


def test_mp4_without_playback_has_no_audio(tmp_path: Path) -> None:
    cap = _need("img-lz")
    out = tmp_path / "silent.mp4"
    r = _run(cap, "-o", str(out), "--fps", "4", "-q")
    assert r.returncode == 0 and r.stderr == ""
    info = _probe(out)
    assert [s["codec_type"] for s in info["streams"]] == ["video"]
    # the last video frame is the final screen
    import av
    with av.open(str(out)) as c:
        last = None
        for f in c.decode(video=0):
            last = f.to_ndarray(format="rgb24")
    final = picture_at(cap, None).image
    assert last is not None and last.shape == final.shape
    assert np.abs(last.astype(int) - final).mean() < 3  # H.264 at crf 18


@pytest.mark.parametrize("ext, codec", [(".webm", "vp9"), (".gif", "gif")])
def test_other_video_types(tmp_path: Path, ext: str, codec: str) -> None:
    cap = _need("resize")
    out = tmp_path / f"clip{ext}"
    r = _run(cap, "-o", str(out), "--fps", "4", "--scale", "0.5", "--from", "1", "--to", "6", "-q")
    assert r.returncode == 0, r.stderr
    info = _probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == codec
    assert int(video["width"]) == 512  # half of the largest picture (1024x768); the 800x600 ones sit inside
    assert 4.0 <= float(info["format"]["duration"]) <= 5.5


def test_png_per_change_and_the_last_one_is_the_end(tmp_path: Path) -> None:
    cap = _need("img-lz")
    outdir = tmp_path / "frames"
    r = _run(cap, "-o", str(outdir) + "/", "-q")
    assert r.returncode == 0, r.stderr
    files = sorted(outdir.glob("*.png"))
    assert len(files) > 20
    times = [float(f.stem.split("-")[2].rstrip("s")) for f in files]
    assert times == sorted(times)
    last = np.asarray(Image.open(files[-1]))
    assert (last == picture_at(cap, None).image).all()


def test_at_and_last(tmp_path: Path) -> None:
    cap = _need("typing")
    early, final = tmp_path / "early.png", tmp_path / "final.png"
    assert _run(cap, "--at", "1.0", "-o", str(early), "-q").returncode == 0
    assert _run(cap, "--last", "-o", str(final), "-q").returncode == 0
    a, b = np.asarray(Image.open(early)), np.asarray(Image.open(final))
    assert a.shape == b.shape == (768, 1024, 3)
    assert (a != b).any()  # the typed text arrives later
    half = tmp_path / "half.png"
    assert _run(cap, "--last", "--scale", "0.5", "-o", str(half), "-q").returncode == 0
    assert Image.open(half).size == (512, 384)


def test_help_has_examples() -> None:
    r = CliRunner().invoke(main, ["render", "--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.output and "--last -o final.png" in r.output


@pytest.mark.parametrize("args, message", [
    (["/nonexistent.pcap", "-o", "x.mp4"], "No such file"),
    (["{notcap}", "-o", "x.mp4"], "not a pcap or pcapng"),
    (["{cap}", "-o", "x.avi"], "use a video name"),
    (["{cap}", "-o", "x.png"], "needs --at or --last"),
    (["{cap}", "--at", "1", "-o", "x.mp4"], "give -o NAME.png"),
    (["{cap}", "--at", "1", "--last", "-o", "x.png"], "exclude each other"),
    (["{cap}", "--from", "5", "--to", "2", "-o", "x.mp4"], "--to is before --from"),
    (["{cap}", "--session", "7", "--last", "-o", "{tmp}/x.png"], "no picture"),
    (["{cap}", "--from", "900", "-o", "{tmp}/x.mp4"], "no picture"),
    (["{empty}", "-o", "x.mp4"], "empty or too short"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    cap = _need("img-lz")
    notcap = tmp_path / "notes.pcap"
    notcap.write_text("this is not a capture\n" * 10)
    empty = tmp_path / "empty.pcapng"
    empty.write_bytes(b"")
    args = [a.format(cap=cap, notcap=notcap, empty=empty, tmp=tmp_path) for a in args]
    r = _run(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert message in r.stderr
    assert len([line for line in lines if "Error" in line]) == 1


def test_truncated_capture_renders_what_it_holds(tmp_path: Path) -> None:
    cap = Path(_need("img-lz"))
    cut = tmp_path / "cut.pcapng"
    data = cap.read_bytes()
    cut.write_bytes(data[: len(data) * 9 // 10])  # breaks off inside a packet
    out = tmp_path / "cut.png"
    r = _run(str(cut), "--last", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert Image.open(out).size == (1024, 768)
    assert "capture damaged" in r.stderr


def test_mid_session_capture_needs_partial_for_video(tmp_path: Path) -> None:
    cap = _need("mid-session")
    out = tmp_path / "mid.mp4"
    r = _run(cap, "-o", str(out), "--fps", "5")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "never drawn" in r.stderr and "--partial" in r.stderr and not out.exists()
    r = _run(cap, "-o", str(out), "--fps", "5", "--partial")
    assert r.returncode == 0, r.stderr
    assert "never drawn" in r.stderr  # the summary still says the picture is incomplete
    info = _probe(out)
    assert float(info["format"]["duration"]) > 5.0


def test_two_sessions_in_one_capture(tmp_path: Path) -> None:
    """mergecap puts two real sessions in one file; --session picks, the default is the first."""
    mergecap = need_program("mergecap")  # comes with tshark
    first, second = _need("img-lz"), _need("typing")
    both = tmp_path / "both.pcapng"
    subprocess.run([mergecap, "-a", "-w", str(both), first, second], check=True)
    pictures = {}
    for args in ([], ["--session", "1"], ["--session", "2"]):
        out = tmp_path / f"s{len(pictures)}.png"
        r = _run(str(both), "--last", "-o", str(out), *args)
        assert r.returncode == 0, r.stderr
        pictures[tuple(args)] = np.asarray(Image.open(out))
    assert (pictures[()] == picture_at(first, None).image).all()
    assert (pictures[("--session", "1")] == pictures[()]).all()
    assert (pictures[("--session", "2")] == picture_at(second, None).image).all()


def test_gif_keeps_the_desktop_colours(tmp_path: Path) -> None:
    cap = _need("img-lz")
    out = tmp_path / "desk.gif"
    assert _run(cap, "-o", str(out), "--fps", "2", "--from", "5", "-q").returncode == 0
    gif = Image.open(out)
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB"))
    final = picture_at(cap, None).image
    assert np.abs(last.astype(int) - final).mean() < 1.0  # a palette per picture: no 3-3-2 banding


def test_mp4_shows_at_every_tick_the_picture_of_that_tick(tmp_path: Path) -> None:
    """Held pictures: decoding the mp4, the picture on screen at each tick is the renderer's."""
    import av
    cap = _need("typing")
    out = tmp_path / "typing.mp4"
    r = _run(cap, "-o", str(out), "--fps", "10")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        decoded = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    ticks = list(frames(cap, fps=10))
    assert len(decoded) < len(ticks)  # typing: ticks that show what the tick before showed are held, not re-encoded
    t0 = ticks[0].time
    changed = 0
    for i, (t, img) in enumerate(ticks):
        shown = [d for pt, d in decoded if pt <= t - t0 + 1e-6][-1]
        err = np.abs(shown.astype(np.int16) - img.astype(np.int16))
        assert np.mean(err) < 2.0, f"tick {i} at {t:.2f}s"
        changed += i > 0 and img is not ticks[i - 1].image
    assert changed >= 5  # the typed text did change the screen


def test_video_writer_takes_the_renderers_bgrx_rows_with_their_colours(tmp_path: Path) -> None:
    """picture() is an RGB view of BGRX rows; the writer encodes those rows, red stays red."""
    import av
    from spicetool.render.video import VideoWriter, bgrx_of
    cap = _need("typing")
    img = next(iter(frames(cap, fps=1))).image
    assert bgrx_of(img) is not None and bgrx_of(np.ascontiguousarray(img)) is None
    bgrx = np.zeros((64, 96, 4), np.uint8)
    bgrx[:, :48, 2] = 255  # left half red, right half blue (BGRX order)
    bgrx[:, 48:, 0] = 255
    out = tmp_path / "rb.mp4"
    w = VideoWriter(str(out), 10)
    w.write(0.0, bgrx[..., 2::-1])
    w.close()
    with av.open(str(out)) as c:
        got = next(iter(c.decode(video=0))).to_ndarray(format="rgb24").astype(int)
    assert np.abs(got[8:56, 8:40] - [255, 0, 0]).max() < 40
    assert np.abs(got[8:56, 56:88] - [0, 0, 255]).max() < 40
