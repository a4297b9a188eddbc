"""`spicetool bundle`: what a support ticket needs of one capture, in one zip.

Each member is what its own command writes: report.html (`report`), stats.json (`stats --json`),
findings.jsonl (`diagnose --json`), final-*.png (`render --last`, one per display channel) and
plain.pcapng (`export`). With --redact the export is made first, redacted, and every other member
is made from it, so that no member holds what the redaction removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from typing import Any

import click

from spicetool.capture import EXIT_NO_SPICE, EXIT_UNREADABLE, CaptureFailure, KeyLog, load_keylog

EXIT_REDACT = 6  # as export: --redact could not redact everything (nothing written)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def heads(figs: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(session, display channel id, member name) of every display channel, as `render --last
    [--session S] --display D` names them (the session only when there are several)."""
    several = len(figs["sessions"]) > 1
    out = []
    for s in figs["sessions"]:
        for c in s["channels"]:
            if c["channel"] == "display":
                name = f"final-session{s['session']}-display{c['channel_id']}.png" if several else \
                    f"final-display{c['channel_id']}.png"
                out.append((s["session"], c["channel_id"], name))
    return out


def final_png(capture: str, session: int, display: int, keylog: KeyLog | None, leg: str, path: str) -> bool:
    """`render --last --session S --display D -o path`: False when that head has no picture."""
    from spicetool.render import SessionScreen, picture_at
    from spicetool.render.frames import records_of
    from spicetool.render.video import save_png

    records = records_of(capture, keylog, leg)
    try:
        frame = picture_at(records, None, screen=SessionScreen(session, display))
    finally:
        records.close()
    if frame is None:
        return False
    save_png(path, frame.image)
    return True


def readme(capture: str, digest: str, members: list[tuple[str, str]], notes: list[str], redact: bool) -> str:
    lines = [f"spicetool bundle of {os.path.basename(capture)}",
             f"sha256 {digest}  {os.path.basename(capture)} ({os.path.getsize(capture)} bytes)", ""]
    if redact:
        lines += ["Redacted: key presses, clipboard and file-transfer contents were replaced by filler of the same",
                  "length (spicetool export --redact); every member below was made from that redacted export.",
                  "The screen stays as it was: what was typed or copied may still show in the pictures.", ""]
    lines.append("Inside:")
    width = max(len(n) for n, _ in members)
    lines += [f"  {n.ljust(width)}  {what}" for n, what in members]
    if notes:
        lines += ["", "Notes:", *(f"  {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_bundle(capture: str, output: str, keylog: KeyLog | None, redact: bool, leg: str,
                 work: str) -> tuple[int, list[str]]:
    """Write the zip (through `work`, a scratch folder); (exit code, lines for stderr)."""
    from spicetool.export.redact import RedactFailure
    from spicetool.export.writer import export_capture
    from spicetool.triage.command import report_page

    messages: list[str] = []
    notes: list[str] = []
    plain = os.path.join(work, "plain.pcapng")
    with open(plain, "wb") as out:
        try:
            exported = export_capture(capture, out, keylog=keylog, redact=redact)
        except RedactFailure as exc:
            return EXIT_REDACT, [f"error: --redact: {exc}"]
    if not exported.connections:
        if redact:
            return EXIT_NO_SPICE, [f"error: no SPICE traffic to export in {capture}: nothing to redact"]
        os.unlink(plain)
        notes.append("no plain.pcapng: no SPICE connection could be exported"
                     + (" (TLS without keys: give --tls-keylog)" if exported.encrypted else ""))
    source, source_keylog = (plain, None) if redact else (capture, keylog)
    title = f"{capture} (redacted: made from its export --redact)" if redact else None
    figs, records, page, warnings = report_page(source, source_keylog, leg, title)
    messages += [f"warning: {w}" for w in warnings]
    if not figs["sessions"]:
        failure = records.failure
        return (failure.exit_code if failure else EXIT_NO_SPICE,
                [*messages, f"error: {failure or f'no SPICE traffic found in {capture}'}"])
    members: list[tuple[str, str]] = []
    files: dict[str, bytes | str] = {}
    assert page is not None
    files["report.html"] = page
    members.append(("report.html", "spicetool report: findings, timeline, figures and screen (opens offline)"))
    files["stats.json"] = json.dumps(figs, default=str) + "\n"
    members.append(("stats.json", "spicetool stats --json"))
    files["findings.jsonl"] = "".join(json.dumps(f, default=str) + "\n" for f in figs["findings"])
    above = sum(1 for f in figs["findings"] if f["severity"] != "info")
    members.append(("findings.jsonl", f"spicetool diagnose --json: {len(figs['findings'])} finding(s), "
                                      f"{above} above info"))
    for session, display, name in heads(figs):
        path = os.path.join(work, name)
        if final_png(source, session, display, source_keylog, leg, path):
            with open(path, "rb") as f:
                files[name] = f.read()
            option = f"--session {session} " if len(figs["sessions"]) > 1 else ""
            members.append((name, f"spicetool render --last {option}--display {display}: the screen at the end"))
        else:
            notes.append(f"no {name}: session {session}'s display {display} never had a picture")
    if os.path.exists(plain):
        with open(plain, "rb") as f:
            files["plain.pcapng"] = f.read()
        members.append(("plain.pcapng", f"spicetool export{' --redact' if redact else ''}: "
                                        f"{exported.connections} connection(s), {exported.messages} messages as "
                                        "plain SPICE over TCP (Wireshark reads it)"))
    if keylog is not None and not redact:
        notes.append("made with a TLS key log (not included)")
    if records.failure:
        notes.append(f"the capture is damaged: {records.failure}; the figures stop there")
    members.insert(0, ("README.txt", "this list"))
    part = output + ".part"  # written aside, renamed when whole
    try:
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("README.txt", readme(capture, sha256(capture), members, notes, redact))
            for name, data in files.items():
                z.writestr(name, data)
        os.replace(part, output)
    except OSError as exc:
        if os.path.exists(part):
            os.unlink(part)
        return EXIT_UNREADABLE, [*messages, f"error: {output}: cannot write: {exc.strerror or exc}"]
    messages.append(f"{output}: {', '.join(n for n, _ in members)}")
    if records.failure:
        return records.failure.exit_code, [*messages, f"error: {records.failure}"]
    return 0, messages


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="zip file to write.")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it); "
                   "the key log itself is not put in the zip.")
@click.option("--redact", is_flag=True,
              help="Make every member from `export --redact`: key presses, clipboard and file-transfer contents "
                   "replaced by filler of the same length. The screen stays as it is.")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: count and draw this leg of it.")
def bundle(capture: str, output: str, keylog_path: str | None, redact: bool, leg: str) -> None:
    """One zip for a support ticket: the report, the figures, the findings, the final
    picture and the plain export of a capture.

    \b
    Inside:
      README.txt      what is inside, the capture's name, size and sha256
      report.html     spicetool report (findings, the timeline, figures, screen)
      stats.json      spicetool stats --json
      findings.jsonl  spicetool diagnose --json (one finding a line)
      final-displayN.png  spicetool render --last --display N, every display channel
                      (final-sessionS-displayN.png when the capture holds several sessions)
      plain.pcapng    spicetool export (plain SPICE over TCP; left out, and said so in
                      README.txt, when no connection can be exported: TLS without keys)

    With --redact the export is made redacted first and every other member is made
    from it, so the typed text and the clipboard are in none of them; the pictures
    still show the screen as it was.

    \b
    Examples:
      spicetool bundle session.pcapng -o case.zip
      spicetool bundle tls.pcapng --tls-keylog keys.log -o case.zip
      spicetool bundle session.pcapng --redact -o for-vendor.zip

    \b
    Exit codes: as `spicetool stats`: 0 written; 1 no SPICE traffic found (nothing
    written); 2 bad usage; 3 the capture or key log cannot be read, or the zip cannot
    be written; 4 the capture is truncated or corrupt (the zip is written with what
    came before the damage); 6 --redact could not redact everything (nothing written).
    Findings do not change the exit code (see `spicetool diagnose` for that).
    """
    if os.path.abspath(output) == os.path.abspath(capture):
        raise click.UsageError("-o must name another file than the capture")
    try:
        keylog = load_keylog(keylog_path)
    except CaptureFailure as exc:
        _fail(str(exc), exc.exit_code)
    if not os.path.exists(capture):
        _fail(f"{capture}: No such file or directory", EXIT_UNREADABLE)
    try:
        with tempfile.TemporaryDirectory(prefix="spicetool-bundle-") as work:
            code, lines = write_bundle(capture, output, keylog, redact, leg, work)
    except CaptureFailure as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)
