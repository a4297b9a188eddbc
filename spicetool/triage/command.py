"""`spicetool stats`: the figures of a recorded SPICE session."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from spicetool.capture import EXIT_NO_SPICE, EXIT_UNREADABLE, CaptureFailure, KeyLog, load_keylog


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every figure (for scripts).")
@click.option("--inputs", "input_limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="At most this many lines of the input timeline in the tables.")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: count this leg of it.")
def stats(capture: str, as_json: bool, input_limit: int, keylog_path: str | None, leg: str) -> None:
    """Figures of every SPICE session in a pcap/pcapng capture.

    \b
    Overview: channels, capabilities, auth, mouse mode, agent, screen sizes and
    their changes, client and server addresses, duration.
    Bandwidth: messages and TCP payload bytes per channel and direction, and
    bytes per second. Latency: PING/PONG round trips per channel (min, avg, p95,
    max). Images: codecs with counts, bytes and ratio to width×height×4.
    Video streams: codec, size, frames, rate, drops the client reported.
    Problems: TCP gaps, protocol and link errors, NOTIFY, DISCONNECTING, resets.
    Findings first: what `spicetool diagnose` finds (kind, severity, title, time).
    More than 20 sessions (a hypervisor's capture): one line per session
    instead (--json holds every figure).
    Inputs: keys and clicks, and the typed text rebuilt from the scancodes
    (a US layout is assumed: SPICE sends key positions, not characters).
    Proxies: a capture taken at a proxy holds each connection twice (client leg
    and server leg); the figures are those of one leg (--leg, the server's by
    default), and each session lists both legs and the proxy's added delay per
    direction (p50, p95, max), measured per message: its time on the leg it passes
    second minus its time on the first.
    Transports: each channel's chain (HTTP CONNECT target and the proxy's answer,
    WebSocket, TLS), in the overview for both legs; a refused or unanswered
    CONNECT is the session's failure with the proxy's status line.

    \b
    Examples:
      spicetool stats captures/typing.pcapng
      spicetool stats --json session.pcap | jq '.sessions[0].latency'
      spicetool stats --json session.pcap | jq -r '.sessions[].typed_text'
      spicetool stats --tls-keylog keys.log tls-session.pcapng

    \b
    Exit codes: 0 success (a warning line for TLS connections left encrypted and
    for malformed key log lines); 1 no SPICE traffic found; 2 bad usage; 3 input
    cannot be read (a key log included); 4 the capture is truncated or corrupt, a
    Decryption Secrets block included (figures up to the damage shown).
    """
    from rich.console import Console

    from spicetool.triage.figures import gather

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        figures, records = gather(capture, keylog_path, leg=leg)
    except CaptureFailure as exc:
        err.print(f"error: {exc}", style="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    figs = figures.as_json()
    if figs["sessions"]:
        from spicetool.triage.findings import as_json as findings_json, find

        figs = {"findings": findings_json(find(figs, records.damage)), **figs}
        if as_json:
            sys.stdout.write(json.dumps(figs, default=str) + "\n")
        else:
            from spicetool.triage.tables import render

            out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
            render(figs, out, input_limit)
    for line in records.warnings:  # malformed key log lines, skipped
        err.print(f"warning: {line}", style="yellow")
    tls = records.tls_problem()
    if tls and not records.failure:
        err.print(f"warning: {tls}", style="yellow")
    if records.failure:
        err.print(f"error: {records.failure}", style="red")
        sys.exit(records.failure.exit_code)
    if not figs["sessions"]:
        err.print(f"error: no SPICE traffic found in {capture}", style="red")
        sys.exit(EXIT_NO_SPICE)


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def report_page(capture: str, keylog: KeyLog | None = None, leg: str = "server", title: str | None = None) -> tuple[
        dict[str, Any], Any, str | None, list[str]]:
    """One pass over the capture: its figures (those of `stats --json`, findings first), the records
    read (their `damage`, `failure`), the page (None: no SPICE session) and warnings for stderr.
    `title`: the capture's name on the page (default: its path). CaptureFailure when it cannot be read."""
    from spicetool.triage.figures import gather
    from spicetool.triage.report import render_html
    from spicetool.triage.thumbs import Thumbnailer

    thumbs: Thumbnailer | None
    try:
        thumbs = Thumbnailer()
    except Exception:  # noqa: BLE001 - no renderer: the figures still make a page
        thumbs = None
    figures, records = gather(capture, keylog, thumbs.feed if thumbs is not None else None, leg)
    figs = figures.as_json()
    warnings = [*records.warnings, *filter(None, [records.tls_problem()])]
    if not figs["sessions"]:
        return figs, records, None, warnings
    from spicetool.triage.findings import as_json as findings_json, find

    figs = {"findings": findings_json(find(figs, records.damage)), **figs}
    screens: Any
    try:
        screens = thumbs.result(capture, figs, keylog, leg) if thumbs is not None else "no renderer"
    except Exception as exc:  # noqa: BLE001 - the figures are worth a page even when the screen is not
        screens = f"{type(exc).__name__}: {exc}"
    timeline = None
    if not isinstance(screens, str):
        from spicetool.triage.timeline import build

        try:
            timeline = build(figs, thumbs, capture, keylog, leg)
        except Exception as exc:  # noqa: BLE001 - as the thumbnails: the page without its slider
            warnings.append(f"no timeline: {type(exc).__name__}: {exc}")
    return figs, records, render_html(figs, title or capture, records.damage, screens, timeline), warnings


def write_report(capture: str, output: str, keylog: KeyLog | None = None, leg: str = "server") -> dict[str, Any]:
    """Write the page of one capture; what the index and the exit code need. Runs in worker processes.
    One pass over the capture gives both the figures and the thumbnails."""
    from spicetool.triage.report import key_figures

    result: dict[str, Any] = {"capture": capture, "page": None, "code": 0, "error": None, "damage": None,
                              "figures": None}
    try:
        figs, records, page, warnings = report_page(capture, keylog, leg)
    except CaptureFailure as exc:
        return {**result, "code": exc.exit_code, "error": str(exc)}
    result["damage"] = records.damage
    result["warnings"] = warnings
    result["figures"] = key_figures(figs)
    if page is not None:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(page)
            result["page"] = output
        except OSError as exc:
            return {**result, "code": EXIT_UNREADABLE, "error": f"{output}: {exc.strerror or exc}"}
    if records.failure:
        return {**result, "code": records.failure.exit_code, "error": str(records.failure)}
    if not figs["sessions"]:
        return {**result, "code": EXIT_NO_SPICE, "error": f"no SPICE traffic found in {capture}"}
    return result


def _safe_write_report(capture: str, output: str, keylog: KeyLog | None = None, leg: str = "server") -> dict[
        str, Any]:
    try:
        return write_report(capture, output, keylog, leg)
    except Exception as exc:  # noqa: BLE001 - one capture's failure must not sink the others' pages
        return {"capture": capture, "page": None, "code": EXIT_UNREADABLE, "damage": None, "figures": None,
                "error": f"{capture}: cannot be read ({type(exc).__name__}: {exc})"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="HTML file to write; for a folder of captures, the folder of pages.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Folder mode: captures read at once (default: one per core).")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: count this leg of it.")
def report(capture: str, output: str, jobs: int | None, keylog_path: str | None, leg: str) -> None:
    """One self-contained HTML page with the findings and figures of `stats`, charts and the screen.

    Findings first (as `spicetool diagnose` finds them), with their evidence; then the
    timeline: a slider that shows the screen at that moment (render's pictures, one
    every second and one at each finding; the interval grows with the capture so that
    there are at most 120), over one time axis with each channel's bytes per second,
    the inputs and the findings. Clicking a finding's time moves the slider there.

    Inline SVG charts (bandwidth over time, round trips, image bytes per codec),
    thumbnails of the screen at key moments (first complete picture, after each
    resolution change, the largest round trip, the end), tables for channels,
    latency, images, video streams, problems and inputs, and the figures as JSON
    inside the page. Nothing is fetched from the network: the page can be mailed
    or attached to a ticket as it is.

    Given a folder, every capture in it (*.pcap, *.pcapng, *.cap) gets its page in
    the output folder, read in parallel, plus index.html with a line of key figures
    per capture and which ones are damaged.

    \b
    Examples:
      spicetool report captures/typing.pcapng -o typing.html
      spicetool report session.pcap -o /tmp/report.html && xdg-open /tmp/report.html
      spicetool report captures/ -o /tmp/reports/ && xdg-open /tmp/reports/index.html
      spicetool report --tls-keylog keys.log tls-session.pcapng -o tls.html

    \b
    Exit codes: as `spicetool stats`; on a damaged capture the page is still
    written with the figures up to the damage. For a folder: the highest exit
    code of its captures (every page and the index are written regardless).
    """
    try:
        keylog = load_keylog(keylog_path)
    except CaptureFailure as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if os.path.isdir(capture):
        sys.exit(_report_folder(capture, output, jobs, keylog, leg))
    if not os.path.exists(capture):
        click.echo(f"error: {capture}: no such file", err=True)
        sys.exit(EXIT_UNREADABLE)
    r = _safe_write_report(capture, output, keylog, leg)
    for line in r.get("warnings") or ():
        click.echo(f"warning: {line}", err=True)
    if r["error"]:
        click.echo(f"error: {r['error']}", err=True)
    sys.exit(r["code"])


def _report_folder(folder: str, outdir: str, jobs: int | None, keylog: KeyLog | None = None,
                   leg: str = "server") -> int:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # imported once here: forked workers inherit them instead of each importing them again
    import spicetool.render.frames  # noqa: F401
    import spicetool.triage.figures  # noqa: F401
    import spicetool.triage.thumbs  # noqa: F401
    from spicetool.triage.report import index_html

    captures = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                      if n.lower().endswith(CAPTURE_SUFFIXES) and os.path.isfile(os.path.join(folder, n)))
    if not captures:
        click.echo(f"error: no captures (*.pcap, *.pcapng, *.cap) in {folder}", err=True)
        return EXIT_NO_SPICE
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        click.echo(f"error: {outdir}: {exc.strerror or exc}", err=True)
        return EXIT_UNREADABLE
    pages = [os.path.join(outdir, os.path.basename(c) + ".html") for c in captures]
    workers = min(jobs or os.cpu_count() or 1, len(captures))
    try:
        if workers == 1:
            results = [_safe_write_report(c, p, keylog, leg) for c, p in zip(captures, pages)]
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_safe_write_report, captures, pages, [keylog] * len(captures),
                                        [leg] * len(captures)))
    except KeyboardInterrupt:
        return 130
    except BrokenProcessPool as exc:  # a worker killed from outside (out of memory, a signal)
        click.echo(f"error: a worker process died: {exc}", err=True)
        return EXIT_UNREADABLE
    for r in results:
        if r["error"]:
            click.echo(f"error: {r['error']}", err=True)
    index = os.path.join(outdir, "index.html")
    try:
        with open(index, "w", encoding="utf-8") as f:
            f.write(index_html(results, folder))
    except OSError as exc:
        click.echo(f"error: {index}: {exc.strerror or exc}", err=True)
        return EXIT_UNREADABLE
    return max(r["code"] for r in results)
