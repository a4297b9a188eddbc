"""`spicetool render`: what was on the screen, as a video, PNG files or one picture."""
from __future__ import annotations

import os
import sys
import time as clock
from pathlib import Path
from typing import Iterator

import click
import numpy as np

from spicetool.capture import CaptureFailure, CaptureRecords, KeyLog, Record, load_keylog, open_records
from spicetool.render.audio import PlaybackAudio
from spicetool.render.frames import frames, picture_at, records_of
from spicetool.render.monitors import DisplayChoice, DisplayChoiceError
from spicetool.render.session import RenderStats, SessionScreen
from spicetool.render.sizing import largest_picture
from spicetool.render.video import FORMATS, VideoWriter, save_png, scaled


class RenderFailure(click.ClickException):
    exit_code = 1


def _records(path: str, progress, keylog: KeyLog | None, leg: str) -> tuple[Iterator[Record], CaptureRecords]:
    records = open_records(path, keylog=keylog, leg=leg)
    size = max(records.size, 1)

    def gen() -> Iterator[Record]:
        last = 0.0
        for rec in records:
            now = clock.monotonic()
            if progress is not None and now - last > 0.1:
                progress(records.bytes_read, size)
                last = now
            yield rec
        if progress is not None:
            progress(size, size)
    return gen(), records


class _Progress:
    """A rich progress bar over the bytes of the capture, on stderr, only when it is a terminal."""

    def __init__(self, quiet: bool, what: str) -> None:
        self.bar = None
        if quiet or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self.bar = Progress(TextColumn(what), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TextColumn("{task.fields[frames]} frames"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(what, total=1, frames=0)
        self.frames = 0
        self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, frames=self.frames)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary(stats: RenderStats, output: str, duration: float | None, reader, quiet: bool) -> None:
    if quiet:
        return
    from rich.console import Console
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    sessions = ", ".join(str(s) for s in sorted(stats.sessions)) or "none"
    span = ""
    if stats.first_time is not None:
        span = f", capture {stats.first_time:.2f}s to {stats.last_time:.2f}s"
    console.print(f"[bold]{output}[/]: {stats.frames} frame{'s' * (stats.frames != 1)}"
                  + (f", {duration:.2f}s of video" if duration is not None else "") + span
                  + f" (session {sessions})")
    if stats.images:
        console.print("  images: " + ", ".join(f"{k} {v}" for k, v in stats.images.most_common()))
    if stats.stream_codecs:
        console.print(f"  video streams: {', '.join(sorted(stats.stream_codecs))}, {stats.stream_frames} frames")
    if stats.audio:
        console.print(f"  audio: {stats.audio}")
    console.print(f"  placeholders: {stats.placeholders}")
    if stats.unknown_share:
        since = f" since {stats.unknown_since:.2f}s" if stats.unknown_since is not None else ""
        console.print(f"  unknown: {stats.unknown_share:.2%} of the screen{since} (pattern, or transparent with"
                      " --unknown transparent)")
    failure = getattr(reader, "failure", None)
    if failure:
        console.print(f"  [yellow]warning[/]: capture damaged: {str(failure).split(': ', 1)[-1]}")
    for line in getattr(reader, "warnings", ()):
        console.print(f"  [yellow]warning[/]: {line}")
    tls = reader.tls_problem() if reader is not None else None
    if tls:
        console.print(f"  [yellow]warning[/]: {tls}")
    for what, n in stats.warnings.most_common():
        if n:
            detail = stats.details.get(what)
            console.print(f"  [yellow]warning[/]: {what} (x{n})" + (f": {detail}" if detail else ""))


def _why(records: CaptureRecords | None) -> str:
    """Why a capture gave no picture, when the capture can say: its damage, TLS left encrypted."""
    if records is None:
        return ""
    failure = records.failure
    why = str(failure).split(": ", 1)[-1] if failure else records.tls_problem()
    return f"; {why}" if why else ""


def with_alpha(image: np.ndarray, unknown: np.ndarray | None) -> np.ndarray:
    """RGBA: the unknown pixels transparent (and black), the rest opaque."""
    alpha = np.full(image.shape[:2], 255, np.uint8)
    rgba = np.dstack([image, alpha])
    if unknown is not None and unknown.shape == image.shape[:2]:
        rgba[unknown] = 0
    return rgba


def _no_picture(capture: str, stats: RenderStats, start: float | None, end: float | None) -> str:
    incomplete = next((w for w in stats.warnings if w.startswith("picture never complete")), None)
    if incomplete:
        return f"{capture}: no complete picture, {incomplete}; --partial shows what is known"
    return f"{capture}: no picture in the capture" + (" in that time range" if start is not None or end is not None else "")


EPILOG = """\b
Examples:
  spicetool render session.pcapng -o session.mp4          # H.264 video, with the session's sound
  spicetool render session.pcapng -o session.webm --fps 10 --scale 0.5
  spicetool render session.pcapng --last -o final.png      # the screen at the end
  spicetool render session.pcapng --at 12.5 -o frame.png   # the screen 12.5 s into the capture
  spicetool render session.pcapng -o pictures/             # one PNG per change of the screen
  spicetool render session.pcapng -o clip.gif --from 3 --to 8 --cursor
  spicetool render cut.pcap -o cut.mp4 --partial          # a capture that starts mid-session
  spicetool render lossy.pcapng --last --unknown transparent -o known.png  # pixels lost in gaps transparent
  spicetool render heads.pcapng --last --display 0:1 -o m1.png  # monitor 1 of display channel 0
  spicetool render qxl2.pcapng --last --display all -o both.png  # every display channel at once
  spicetool render tls.pcapng --tls-keylog keys.log -o tls.mp4  # TLS traffic and its key log
  spicetool render tls.dsb.pcapng --last -o tls.png  # keys injected by editcap --inject-secrets


Exit codes: 0 written; 1 no picture (the line says why: none drawn, the capture damaged
before one, TLS without its keys), or the capture or key log cannot be read; 2 bad usage.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="out.mp4 / .webm / .mkv / .gif, frame.png (with --at/--last), or DIR/.")
@click.option("--fps", type=click.FloatRange(0.1, 240), default=25.0, show_default=True, help="Video frame rate.")
@click.option("--at", "at", type=click.FloatRange(min=0), help="Picture at this many seconds into the capture.")
@click.option("--last", is_flag=True, help="Picture at the end of the capture.")
@click.option("--session", type=click.IntRange(min=1), help="Session number (as dissect --summary numbers them).")
@click.option("--display", default="0", show_default=True,
              help="Display channel id, all its monitors; CHANNEL:MONITOR for one monitor (0:1); or all:"
                   " every display channel in one picture, where MONITORS_CONFIG puts them; where it puts"
                   " them all at 0,0 (one QXL device per monitor), where the client told the guest's agent"
                   " its monitors are, else side by side.")
@click.option("--from", "start", type=click.FloatRange(min=0), help="Start at this many seconds into the capture.")
@click.option("--to", "end", type=click.FloatRange(min=0), help="Stop at this many seconds into the capture.")
@click.option("--scale", type=click.FloatRange(0.05, 8), default=1.0, show_default=True, help="Scale the pictures.")
@click.option("--cursor", is_flag=True, help="Draw the mouse pointer (from the cursor channel).")
@click.option("--partial", is_flag=True,
              help="Capture starting mid-session: show pictures before every pixel is known (unknown = pattern).")
@click.option("--unknown", type=click.Choice(["pattern", "transparent"]), default="pattern", show_default=True,
              help="With --at/--last: pixels whose content is unknown (lost in capture gaps, never drawn) as the "
                   "placeholder pattern, or transparent in an RGBA PNG.")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: draw this leg of it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def render(capture: str, output: str, fps: float, at: float | None, last: bool, session: int | None,
           display: str, start: float | None, end: float | None, scale: float, cursor: bool, partial: bool,
           unknown: str, keylog_path: str | None, leg: str, quiet: bool) -> None:
    """Rebuild what a SPICE session showed on its screen from a capture."""
    if at is not None and last:
        raise click.UsageError("--at and --last exclude each other")
    if start is not None and end is not None and end < start:
        raise click.UsageError("--to is before --from")
    to_dir = output.endswith(("/", os.sep)) or os.path.isdir(output)
    single = at is not None or last
    ext = Path(output).suffix.lower()
    if unknown != "pattern" and not single:
        raise click.UsageError("--unknown transparent writes one picture: give --at or --last")
    if single and (to_dir or ext != ".png"):
        raise click.UsageError("--at/--last write one picture: give -o NAME.png")
    if not single and not to_dir and ext not in FORMATS:
        raise click.UsageError(f"-o {output}: use a video name (.mp4, .webm, .mkv, .gif) or DIR/ for PNG files"
                               + (" (a .png needs --at or --last)" if ext == ".png" else ""))
    try:
        choice = DisplayChoice.parse(display)
    except DisplayChoiceError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        keylog = load_keylog(keylog_path)
    except CaptureFailure as exc:
        raise RenderFailure(str(exc)) from None
    stats = RenderStats()
    progress = _Progress(quiet, "rendering")
    reader = None
    try:
        records, reader = _records(capture, progress, keylog, leg)
        if single:
            shot = SessionScreen(session, choice, cursor)
            frame = picture_at(records, None if last else at, stats=stats, screen=shot)
            if frame is None:
                raise RenderFailure(f"{capture}: no picture: the capture holds no display surface"
                                    + (f" for session {session}" if session else "")
                                    + (f" on display {display}" if display != "0" else "") + _why(reader))
            mask = shot.unknown()
            if unknown != "pattern" and mask is not None and mask.shape != frame.image.shape[:2]:
                stats.warnings["--unknown transparent: this picture's unknown pixels are shown as the pattern"] += 1
            image = frame.image if unknown == "pattern" else with_alpha(frame.image, mask)
            save_png(output, scaled(image, scale))
            progress.close()
            _summary(stats, output, None, reader, quiet)
            return
        if to_dir:
            Path(output).mkdir(parents=True, exist_ok=True)
            for t, img in frames(records, None, session=session, display=choice, cursor=cursor,
                                 start=start, end=end, stats=stats, partial=partial):
                save_png(Path(output) / f"frame-{stats.frames:06d}-{t:010.3f}s.png", scaled(img, scale))
                progress.frames = stats.frames
            progress.close()
            if stats.frames == 0:
                raise RenderFailure(_no_picture(capture, stats, start, end) + _why(reader))
            _summary(stats, output, None, reader, quiet)
            return
        # the video is as large as the largest picture in the range (a cheap pre-pass)
        size = largest_picture(records_of(capture, keylog, leg), session, choice, start, end)
        if size is not None and scale != 1.0:
            size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        audio = PlaybackAudio()
        screen = SessionScreen(session, choice, cursor, audio, partial)
        writer = VideoWriter(output, fps, audio, size)
        shown: tuple[object, object] = (None, None)  # (picture, scaled): an unchanged picture stays one object
        try:
            for t, img in frames(records, fps, screen=screen, start=start, end=end, stats=stats):
                if img is not shown[0]:
                    shown = (img, scaled(img, scale))
                writer.write(t, shown[1], audio_expected=screen.playback_expected or audio.started)
                progress.frames = stats.frames
        finally:
            writer.close()
        progress.close()
        if stats.frames == 0:
            Path(output).unlink(missing_ok=True)
            raise RenderFailure(_no_picture(capture, stats, start, end) + _why(reader))
        if writer.astream is not None:
            stats.audio = f"{'/'.join(sorted(audio.modes_seen)) or 'none'} {audio.rate} Hz x{audio.channels}" \
                          f" -> {writer.audio_codec}"
        stats.warnings.update(audio.warnings)
        _summary(stats, output, writer.count / fps, reader, quiet)
    except CaptureFailure as exc:
        raise RenderFailure(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise RenderFailure(f"{exc.filename or output}: {exc.strerror or exc}") from None
    finally:
        progress.close()
