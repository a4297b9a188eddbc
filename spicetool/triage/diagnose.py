"""`spicetool diagnose`: the findings of a capture, worst first."""

from __future__ import annotations

import json
import sys

import click

from spicetool.capture import EXIT_NO_SPICE, CaptureFailure

EXIT_FINDINGS = 5  # a warning or an error was found


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, one a line (for scripts).")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--leg", type=click.Choice(["server", "client"]), default="server", show_default=True,
              help="A capture taken at a proxy holds each connection twice: diagnose this leg of it.")
def diagnose(capture: str, as_json: bool, keylog_path: str | None, leg: str) -> None:
    """What went wrong in a SPICE capture: findings with their evidence, worst first.

    Each finding names one kind of trouble (`kind`, a stable snake_case name) with a
    severity (error, warning, info), a one-line title, its time (capture seconds from
    the first packet) and the evidence: frame numbers, channel, the figures that
    tripped it. The rules read the figures of `stats` (one pass over the capture):

    \b
    link:        auth_refused (PERMISSION_DENIED), need_secured, version_mismatch and
                 every other link error by name; tls_error (alerts), tls_without_keys;
                 proxy_refused, proxy_no_answer, websocket_refused, websocket_closed
                 (an unclean close code); protocol_error; server_notice (NOTIFY)
    disconnect:  server_gone / server_reset (the server closed or reset a channel first,
                 with what was in flight), client_closed / client_reset (info),
                 channel_lost (one channel ended long before the others),
                 capture_ended_open (info: the capture stopped first)
    migration:   migration (info: where the session moved, how), migration_failed (the
                 client could not reach the target, or it refused the seamless hand-over)
    display:     display_stall (no screen update for 2 s or more, with its cause:
                 ack_window_full, zero_window, retransmissions, or server_quiet while
                 inputs waited), retransmissions, zero_window
    latency:     high_latency (PING p95 >= 150 ms), latency_spike (round trips far above a
                 low median, with low ones after them), input_latency
                 (key press or click to the next draw, p50/p95; info unless p95 >= 300 ms)
    bandwidth:   bandwidth_ceiling, largest_consumers, uncompressed_images (info)
    streams:     stream_drops (client's STREAM_REPORTs), stream_codec_change
    audio:       audio_gap (no playback data for 200 ms or more of media time inside
                 one playing period), audio_late (packets later than their media times)
    agent:       agent_never_connected (info), agent_disconnected, file_transfer_failed
                 (the receiver's status: DISABLED, NOT_ENOUGH_SPACE, ...),
                 monitors_config_failed, clipboard_unanswered (no data within 5 s)
    capture:     lost_segments, one_direction_missing, capture_truncated (warnings);
                 mid_session_start, proxy_legs, transport (info)

    A healthy session gives nothing above info.

    \b
    Examples:
      spicetool diagnose captures/typing.pcapng
      spicetool diagnose --json session.pcap | jq -c 'select(.severity != "info")'
      spicetool diagnose --tls-keylog keys.log tls-session.pcapng

    \b
    Exit codes: 0 nothing above info found; 5 a warning or an error found (a capture
    that breaks off is itself the capture_truncated warning); 1 no SPICE traffic
    found; 2 bad usage; 3 input cannot be read.
    """
    from rich.console import Console

    from spicetool.triage.figures import gather
    from spicetool.triage.findings import above_info, find

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        figures, records = gather(capture, keylog_path, leg=leg)
    except CaptureFailure as exc:
        err.print(f"error: {exc}", style="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    figs = figures.as_json()
    if not figs["sessions"]:
        err.print(f"error: {records.failure or f'no SPICE traffic found in {capture}'}", style="red")
        sys.exit(records.failure.exit_code if records.failure else EXIT_NO_SPICE)
    findings = find(figs, records.damage)
    if as_json:
        for f in findings:
            sys.stdout.write(json.dumps(f.as_json(), default=str) + "\n")
    else:
        from spicetool.triage.tables import render_findings

        out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
        render_findings([f.as_json() for f in findings], out, evidence=True)
    sys.exit(EXIT_FINDINGS if above_info(findings) else 0)
