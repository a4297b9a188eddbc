"""`spicetool stats`: the figures of a recorded SPICE session."""

from __future__ import annotations

import json
import sys

import click

from spicetool.dissect.capture import CaptureError, open_capture

EXIT_NO_SPICE, EXIT_UNREADABLE, EXIT_DAMAGED = 1, 3, 4


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every figure (for scripts).")
@click.option("--inputs", "input_limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="At most this many lines of the input timeline in the tables.")
def stats(capture: str, as_json: bool, input_limit: int) -> None:
    """Figures of every SPICE session in a pcap/pcapng capture.

    \b
    Overview: channels, capabilities, auth, mouse mode, agent, screen sizes and
    their changes, client and server addresses, duration.
    Bandwidth: messages and TCP payload bytes per channel and direction, and
    bytes per second. Latency: PING/PONG round trips per channel (min, avg, p95,
    max). Images: codecs with counts, bytes and ratio to width×height×4.
    Video streams: codec, size, frames, rate, drops the client reported.
    Problems: TCP gaps, protocol and link errors, NOTIFY, DISCONNECTING, resets.
    Inputs: keys and clicks, and the typed text rebuilt from the scancodes
    (a US layout is assumed: SPICE sends key positions, not characters).

    \b
    Examples:
      spicetool stats captures/typing.pcapng
      spicetool stats --json session.pcap | jq '.sessions[0].latency'
      spicetool stats --json session.pcap | jq -r '.sessions[].typed_text'

    \b
    Exit codes: 0 success; 1 no SPICE traffic found; 2 bad usage; 3 input cannot be
    read; 4 the capture is truncated or corrupt (figures up to the damage shown).
    """
    from rich.console import Console

    from spicetool.triage.figures import gather

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        reader = open_capture(capture)
    except CaptureError as exc:
        err.print(f"error: {exc}", style="red")
        sys.exit(EXIT_UNREADABLE)
    try:
        figures = gather(reader)
    except KeyboardInterrupt:
        sys.exit(130)
    figs = figures.as_json()
    if figs["sessions"]:
        if as_json:
            sys.stdout.write(json.dumps(figs, default=str) + "\n")
        else:
            from spicetool.triage.tables import render

            out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
            render(figs, out, input_limit)
    if reader.damage:
        err.print(f"error: {capture}: {reader.damage}", style="red")
        sys.exit(EXIT_DAMAGED)
    if not figs["sessions"]:
        err.print(f"error: no SPICE traffic found in {capture}", style="red")
        sys.exit(EXIT_NO_SPICE)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
def report(capture: str, output: str) -> None:
    """One self-contained HTML page with the figures of `stats` and charts.

    Inline SVG charts (bandwidth over time, round trips, image bytes per codec),
    tables for channels, latency, images, video streams, problems and inputs, and
    the figures as JSON inside the page. Nothing is fetched from the network: the
    page can be mailed or attached to a ticket as it is.

    \b
    Examples:
      spicetool report captures/typing.pcapng -o typing.html
      spicetool report session.pcap -o /tmp/report.html && xdg-open /tmp/report.html

    \b
    Exit codes: as `spicetool stats`; on a damaged capture the page is still
    written with the figures up to the damage.
    """
    from spicetool.triage.figures import gather
    from spicetool.triage.report import render_html

    try:
        reader = open_capture(capture)
    except CaptureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    figs = gather(reader).as_json()
    if figs["sessions"]:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(render_html(figs, capture))
        except OSError as exc:
            click.echo(f"error: {output}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_UNREADABLE)
    if reader.damage:
        click.echo(f"error: {capture}: {reader.damage}", err=True)
        sys.exit(EXIT_DAMAGED)
    if not figs["sessions"]:
        click.echo(f"error: no SPICE traffic found in {capture}", err=True)
        sys.exit(EXIT_NO_SPICE)
