"""`spicetool export`: the SPICE connections of a TLS, proxied or WebSocket capture as plain SPICE over TCP."""

from __future__ import annotations

import os
import sys

import click

from spicetool.capture import EXIT_NO_SPICE, CaptureFailure, load_keylog

EXIT_OUTPUT = 5  # the output file cannot be written
EXIT_REDACT = 6  # --redact could not redact everything: nothing written


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="pcapng file to write (Wireshark and every spicetool command read it).")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--session", "sessions", multiple=True, type=int, help="Only these sessions (numbers as dissect shows).")
@click.option("--redact", is_flag=True,
              help="Replace key presses, clipboard contents and file-transfer contents by filler of the same "
                   "length. The screen stays as it is.")
def export(capture: str, output: str, keylog_path: str | None, sessions: tuple[int, ...], redact: bool) -> None:
    """Write a capture's SPICE connections as plain SPICE over TCP.

    For a capture whose SPICE travels inside TLS (with its key log), an HTTP
    CONNECT proxy tunnel or a WebSocket (spice-html5, websockify): each channel connection becomes one
    TCP stream of its own with the original addresses, ports and capture
    times, carrying the SPICE bytes exactly as those layers delivered them
    (CONNECT preamble, WebSocket framing and TLS removed). The handshakes,
    ACKs and FINs are synthetic; segments lost in the original stay lost (the
    sequence numbers skip the missing bytes). Wireshark, tshark and every
    spicetool command read the result without a key log. Plain SPICE
    connections are copied the same way; TLS without its keys is left out.

    \b
    --redact, to hand a capture on: KEY_DOWN/KEY_UP codes and KEY_SCANCODE
    bytes become zeros (the presses stay, at their times), the data of the
    agent's CLIPBOARD messages (both ways) and FILE_XFER_DATA messages become
    '*' of the same length; every other message is unchanged. The screen stays
    as it is: what was typed or copied may still be visible in the pictures,
    and file names (FILE_XFER_START) stay.

    \b
    Examples:
      spicetool export tls.pcapng --tls-keylog keys.log -o plain.pcapng
      spicetool export html5-websockify.pcapng -o plain.pcapng
      spicetool export session.pcapng --redact -o for-vendor.pcapng
      spicetool export proxy.pcapng --session 2 -o s2.pcapng

    \b
    Exit codes: 0 written; 1 no SPICE traffic to export (nothing written);
    2 bad usage; 3 the capture or key log cannot be read; 4 the capture is
    truncated or corrupt (what came before the damage is written); 5 the
    output cannot be written; 6 --redact could not redact every key press,
    clipboard or file message (nothing written).
    """
    from spicetool.export.redact import RedactFailure
    from spicetool.export.writer import export_capture

    if os.path.abspath(output) == os.path.abspath(capture):
        raise click.UsageError("-o must name another file than the capture")
    try:
        keylog = load_keylog(keylog_path)
    except CaptureFailure as exc:
        _fail(str(exc), exc.exit_code)
    if not os.path.exists(capture):
        _fail(f"{capture}: no such file", 3)
    part = output + ".part"  # written aside, renamed when whole: no half export under the real name
    try:
        out = open(part, "wb")
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_OUTPUT)
    try:
        with out:
            result = export_capture(capture, out, keylog=keylog, sessions=sessions, redact=redact)
    except CaptureFailure as exc:
        os.unlink(part)
        _fail(str(exc), exc.exit_code)
    except RedactFailure as exc:
        os.unlink(part)
        _fail(f"--redact: {exc}", EXIT_REDACT)
    except OSError as exc:
        os.unlink(part)
        _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_OUTPUT)
    if not result.connections:
        os.unlink(part)
        what = f"session {', '.join(map(str, sessions))} of " if sessions else ""
        hint = " (TLS without keys: give --tls-keylog)" if result.encrypted else ""
        _fail(f"no SPICE traffic to export in {what}{capture}{hint}", EXIT_NO_SPICE)
    try:
        os.replace(part, output)
    except OSError as exc:
        os.unlink(part)
        _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_OUTPUT)
    line = f"{output}: {result.connections} connection{'s' * (result.connections != 1)}, {result.messages} messages"
    if redact:
        r = result.redacted
        line += f"; redacted {r['keys']} key messages, {r['clipboard']} clipboard, {r['file_data']} file data"
    click.echo(line, err=True)
    if result.failure is not None:
        _fail(str(result.failure), result.failure.exit_code)
