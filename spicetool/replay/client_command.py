"""`spicetool replay`: a SPICE client of our own that replays what a captured client sent to
a new server, and records the new session as a capture."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from spicetool.server.passwords import given_password

EXIT_FAILED = 1      # connection refused, link refused, the server broke off
EXIT_CAPTURE = 3     # the capture is unreadable or has no client side


def _password(password: str | None, password_file: Path | None) -> bytes:
    if password is not None and password_file is not None:
        raise click.UsageError("give --password or --password-file, not both")
    pw = given_password(password, password_file)
    if len(pw) > 60 or b"\0" in pw:
        raise click.UsageError("a SPICE password is at most 60 bytes, without NUL")
    return pw


def _recording(path: Path):
    from spicetool.capture import PcapngWriter, PcapWriter, Recording
    try:
        out = open(path, "wb")
    except OSError as e:
        raise click.UsageError(f"cannot write {path}: {e.strerror}") from None
    writer = PcapWriter(out) if path.suffix == ".pcap" else PcapngWriter(out, "spicetool replay")
    return Recording(out, writer)


def _summary(ch) -> str:
    s, r = ch.sent, ch.received
    return (f"{ch.name:<12} sent {s['messages']} messages, {s['bytes']} bytes "
            f"({s['replayed']} replayed, {s['answered']} answers); "
            f"received {r['messages']} messages, {r['bytes']} bytes")


@click.command("replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "target", required=True, metavar="HOST:PORT", help="The SPICE server to replay to.")
@click.option("--password", help="The new server's password (default: none).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from the first line of this file.")
@click.option("-w", "--write", "write", type=click.Path(dir_okay=False, path_type=Path),
              help="Record the new session (both directions, every channel) to this pcapng "
                   "(.pcap: classic pcap).")
@click.option("--session", type=click.IntRange(1), help="Which session of the capture (numbers as "
                                                        "dissect shows; default: the first with a client).")
@click.option("--speed", type=click.FloatRange(0.01, 1000), default=1.0, show_default=True,
              help="How many times faster than captured.")
@click.option("--connect-timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Seconds to wait for each connection and each answer of the link stage.")
@click.option("--settle", type=click.FloatRange(0, 600), default=0.5, show_default=True,
              help="At the end, leave once the server has been quiet this many seconds (a slow or loaded "
                   "server may still be sending its answer to the last inputs).")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: replay this leg's client side.")
@click.option("-q", "--quiet", is_flag=True, help="No notes and no summary; errors only.")
def replay(capture: Path, target: str, password: str | None, password_file: Path | None,
           write: Path | None, session: int | None, speed: float, connect_timeout: float,
           settle: float, leg: str, quiet: bool) -> None:
    """Replay what a captured SPICE client sent, to a new server, with the captured pacing.

    A client of our own links every channel the captured client opened (main first, then the
    others in captured order, with the captured capabilities), then sends the client's
    messages at their captured times: display init, keys, mouse motion and clicks, the agent
    traffic (AGENT_START, clipboard, MONITORS_CONFIG, files). ACK, ACK_SYNC, PONG and agent
    tokens answer the new server's own messages. With -w everything either side sends is
    recorded as a capture that dissect, render and tshark read. At the end, one line per
    channel: messages and bytes each way.

    Exit status: 0 done, 1 connection or link refused or the server broke off, 3 the capture
    cannot be read or has no client side.

    \b
    Examples:
      spicetool replay typing.pcapng --to 127.0.0.1:5900
      spicetool replay typing.pcapng --to 127.0.0.1:5900 --password-file pw.txt -w again.pcapng
      spicetool replay session.pcap --to vm-host:5901 --session 2 --speed 2 -q
      spicetool serve --disable-ticketing --replay s.pcapng -p 5905 &   # then, to compare:
      spicetool replay s.pcapng --to 127.0.0.1:5905 -w new.pcapng && spicetool render new.pcapng --last -o new.png
    """
    from spicetool.record.proxy import parse_hostport
    from spicetool.replay.client_channel import ReplayFailure
    from spicetool.replay.client_plan import PlanError, build_plan
    from spicetool.replay.client_session import ReplaySession

    try:
        hp = parse_hostport(target)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--to") from None
    pw = _password(password, password_file)

    def note(text: str) -> None:
        if not quiet:
            click.echo(f"note: {text}", err=True)

    def fail(text: str, code: int) -> None:
        click.echo(f"error: {text}", err=True)
        sys.exit(code)

    try:
        plan = build_plan(str(capture), session, leg)
    except PlanError as e:
        fail(str(e), EXIT_CAPTURE)
    if plan.damaged:
        note(f"the capture breaks off ({plan.damaged}); replaying what came before")
    recording = _recording(write) if write is not None else None
    factory = None if recording is None else recording.new_stream
    rs = ReplaySession(plan, hp.host, hp.port, pw, speed, factory, note, connect_timeout, settle)
    error = None
    try:
        asyncio.run(rs.run())
    except ReplayFailure as e:
        error = str(e)
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        if recording is not None:
            recording.close()
    if not quiet and rs.channels:
        for ch in rs.channels:
            click.echo(_summary(ch))
    if error is not None:
        fail(error, EXIT_FAILED)
    if not quiet:
        click.echo(f"replayed session {plan.session} of {capture.name} to {hp} in {rs.elapsed:.1f} s"
                   + (f"; recorded to {write}" if write is not None else ""))
