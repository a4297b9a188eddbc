"""`spicetool serve`: a SPICE server of our own that real clients (remote-viewer, spicy) open."""
from __future__ import annotations

import asyncio
import re
import ssl
import sys
from pathlib import Path

import click

from spicetool.server.passwords import given_password

MAX_SIZE = 8192


def _size(ctx, param, value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", value or "")
    if not m:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 1024x768")
    w, h = int(m.group(1)), int(m.group(2))
    if not (64 <= w <= MAX_SIZE and 64 <= h <= MAX_SIZE):
        raise click.BadParameter(f"{w}x{h} is outside 64x64 .. {MAX_SIZE}x{MAX_SIZE}")
    return w, h


def _when(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    if value == "end":
        return float("inf")
    try:
        t = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not seconds (or 'end')", param_hint=name) from None
    if not (t >= 0):
        raise click.BadParameter(f"{value!r} is negative", param_hint=name)
    return t


def _secure_channels(value: str) -> set[int]:
    from spicetool.stack.types import CHANNEL_TYPES
    served = ["main", "display", "inputs", "cursor"]
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == ["all"]:
        names = served
    bad = [n for n in names if n not in served]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: not among {', '.join(served)} (or 'all')",
                                 param_hint="--secure-channels")
    return {CHANNEL_TYPES[n] for n in names}


def _password(password: str | None, password_file: Path | None, disable_ticketing: bool) -> bytes | None:
    given = [n for n, v in (("--password", password), ("--password-file", password_file),
                            ("--disable-ticketing", disable_ticketing)) if v]
    if len(given) != 1:
        raise click.UsageError("say how clients authenticate: exactly one of --password, "
                               "--password-file or --disable-ticketing"
                               + (f" (got {', '.join(given)})" if given else ""))
    if disable_ticketing:
        return None
    pw = given_password(password, password_file)
    if not pw:
        raise click.UsageError("the password is empty (use --disable-ticketing for no password)")
    if len(pw) > 60 or b"\0" in pw:
        raise click.UsageError("a SPICE password is at most 60 bytes, without NUL")
    return pw


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=5900, show_default=True)
@click.option("--password", help="The ticket clients must give (at most 60 bytes).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from the first line of this file.")
@click.option("--disable-ticketing", is_flag=True, help="Let any client in without a password.")
@click.option("--size", "size", default="1024x768", show_default=True, callback=_size,
              help="Demo desktop size, WIDTHxHEIGHT.")
@click.option("--fps", type=click.FloatRange(0.5, 60), default=10, show_default=True,
              help="Demo animation frames per second.")
@click.option("--still", is_flag=True, help="Draw the demo desktop once and do not animate it.")
@click.option("--input-log", type=click.Path(dir_okay=False, path_type=Path),
              help="Append every client input event to this file (JSON lines).")
@click.option("--image-compression", default="auto_glz", show_default=True,
              type=click.Choice(["off", "quic", "lz", "glz", "lz4", "auto_glz", "auto_lz"]),
              help="How images are sent: off (BITMAP), a codec, or auto_glz/auto_lz (photo-like "
                   "pictures as QUIC, the others as GLZ/LZ); a client's preferred compression "
                   "overrides it, as with spice-server.")
@click.option("--streaming-video", default="off", show_default=True, type=click.Choice(["off", "all", "filter"]),
              help="Regions redrawn often become an MJPEG video stream, as spice-server's option: "
                   "all (any such region) or filter (photo-like regions of 96x96 pixels or more).")
@click.option("--name", default="spicetool demo", show_default=True, help="Name shown by clients.")
@click.option("--link-timeout", type=click.FloatRange(0.1, 600), default=10, show_default=True,
              help="Seconds a client has to complete the link stage.")
@click.option("--ping-interval", type=click.FloatRange(0.1, 3600), default=10, show_default=True,
              help="Seconds between latency pings on every channel.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Serve the display and cursor of this capture (pcap/pcapng) instead of the demo.")
@click.option("--tls-keylog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--replay: an NSS key log (SSLKEYLOGFILE) that decrypts the capture's TLS connections.")
@click.option("--speed", type=click.FloatRange(0.01, 10000), default=1.0, show_default=True,
              help="--replay: how many times faster than captured.")
@click.option("--loop", is_flag=True, help="--replay: start again at the end.")
@click.option("--from", "start", default=None, callback=lambda c, p, v: _when(v, "--from"),
              help="--replay: start on the picture at this many seconds from the capture's "
                   "start ('end': the final picture, nothing left to play).")
@click.option("--to", "stop", default=None, callback=lambda c, p, v: _when(v, "--to"),
              help="--replay: stop at this many seconds from the capture's start.")
@click.option("--pause-at", default=None, callback=lambda c, p, v: _when(v, "--pause-at"),
              help="--replay: hold the picture at this many seconds from the capture's start "
                   "until SIGUSR1.")
@click.option("--replay-mode", type=click.Choice(["pictures", "commands"]), default="pictures",
              show_default=True,
              help="--replay: 'commands' sends the captured fills, copies of images and copy_bits "
                   "as their own draws (other draws, and a client's first picture, as pictures "
                   "of what changed); 'pictures' sends changed bands of the rendered picture.")
@click.option("--agent", is_flag=True,
              help="A guest agent behind the main channel (as the Linux spice-vdagent): the client "
                   "resizes the desktop (MONITORS_CONFIG), clipboard, file transfer, mouse state.")
@click.option("--agent-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Files the client sends to the agent land here (implies --agent; "
                   "without it file transfers are refused).")
@click.option("--agent-max-file", type=click.IntRange(0, 1 << 40), default=256 * 1024 * 1024,
              show_default=True, help="Largest file (bytes) the agent accepts; four times this "
                                       "over the server's life.")
@click.option("--tls-port", type=click.IntRange(1, 65535),
              help="Also listen for TLS on this port (as spice-server's tls-port).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--tls-port: the server certificate (PEM); without --cert/--key a self-signed "
                   "one is made and its path printed (give it to the client as its CA file).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--tls-port: the private key of --cert (PEM).")
@click.option("--secure-channels", default="",
              help="Channels linked over TLS only, comma-separated (main,display,inputs,cursor) "
                   "or 'all': the plain port answers them NEED_SECURED.")
@click.option("-v", "--verbose", is_flag=True, help="Log every channel, latency and input event.")
def serve(host: str, port: int, password: str | None, password_file: Path | None,
          disable_ticketing: bool, size: tuple[int, int], fps: float, still: bool,
          input_log: Path | None, image_compression: str, streaming_video: str, name: str, link_timeout: float,
          ping_interval: float, replay: Path | None, tls_keylog: Path | None, speed: float, loop: bool, start: float | None,
          stop: float | None, pause_at: float | None, replay_mode: str, agent: bool, agent_dir: Path | None,
          agent_max_file: int, tls_port: int | None, cert: Path | None, key: Path | None,
          secure_channels: str, verbose: bool) -> None:
    """Serve a desktop over SPICE to real clients (remote-viewer, spicy, spicy-screenshot).

    With no capture, the desktop is a built-in demo: a clock, text, colour bars, a moving box
    and a cursor, drawn through a QXL-like device model and sent as display and cursor messages.
    With --replay, the display and cursor of a captured session play instead, paced by the
    capture's timestamps: every display channel of the capture (one per monitor of a multi-head
    guest) is served as a display channel of its own, with its cursor channel. Inputs typed or clicked in the client go to the input log.

    \b
    Examples:
      spicetool serve --disable-ticketing
      spicetool serve -p 5930 --password s3cret --input-log inputs.jsonl
      spicetool serve --password-file pw.txt --size 800x600 --still
      spicetool serve --disable-ticketing --replay session.pcapng --speed 2 --loop
      spicetool serve --disable-ticketing --replay session.pcapng --from end
      spicetool serve --disable-ticketing --agent-dir ~/received   # resize, clipboard, files
      remote-viewer spice://127.0.0.1:5900      # then, in another terminal
      spicy-screenshot -h 127.0.0.1 -p 5900 -o shot.ppm
    """
    from rich.console import Console

    from spicetool.qxl.images import available_compressions
    from spicetool.replay.capture_replay import ReplayError
    from spicetool.replay.runner import ServeOptions, run

    pw = _password(password, password_file, disable_ticketing)
    if image_compression not in available_compressions():
        raise click.UsageError(f"--image-compression {image_compression}: this build has no "
                               f"{image_compression} encoder yet (available: "
                               f"{', '.join(available_compressions())})")
    if replay is None and (speed != 1.0 or loop or start is not None or stop is not None
                           or pause_at is not None or tls_keylog is not None):
        raise click.UsageError("--speed, --loop, --from, --to, --pause-at and --tls-keylog go with "
                               "--replay CAPTURE")
    if start is not None and stop is not None and stop < start:
        raise click.UsageError("--to is before --from")
    opts = ServeOptions(host, port, pw, input_log=input_log, name=name, link_timeout=link_timeout,
                        ping_interval=ping_interval, verbose=verbose, image_compression=image_compression,
                        size=size, fps=fps, still=still, replay=replay, tls_keylog=tls_keylog, speed=speed,
                        loop=loop,
                        start=start or 0.0, stop=stop, pause_at=pause_at, replay_mode=replay_mode, agent=agent or agent_dir is not None,
                        agent_dir=agent_dir, agent_max_file=agent_max_file, tls_port=tls_port, cert=cert,
                        key=key, secure_channels=_secure_channels(secure_channels),
                        streaming_video=streaming_video)
    if (cert is None) != (key is None):
        raise click.UsageError("--cert and --key go together")
    if tls_port is None and (cert is not None or opts.secure_channels):
        raise click.UsageError("--cert/--key and --secure-channels go with --tls-port")
    if tls_port is not None and tls_port == port:
        raise click.UsageError("--tls-port must differ from --port")
    if agent_dir is not None and not agent_dir.is_dir():
        raise click.UsageError(f"--agent-dir {agent_dir}: not a directory")
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        asyncio.run(run(opts, console))
    except ReplayError as e:
        console.print(f"[red]error:[/] {e}")
        sys.exit(3)
    except ssl.SSLError as e:
        console.print(f"[red]error:[/] --cert/--key: {e.reason or e}")
        sys.exit(1)
    except OSError as e:
        console.print(f"[red]error:[/] cannot listen on {host}:{port}: {e.strerror or e}")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
