"""`spicetool dissect`: every SPICE message of a capture or of live traffic."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Iterable

import click

from spicetool.capture import EXIT_NO_SPICE, EXIT_TRANSPORT, CaptureFailure, Record, open_live, open_records

if TYPE_CHECKING:
    from rich.console import Console


# errors not counted in the closing "N gaps or protocol errors" line: they have lines of their own
_SAID_APART = {"tls_encrypted", "proxy_refused", "proxy_no_answer", "websocket_refused", "proxy_error",
               "websocket_error"}


def _matches(rec: Record, channels: set[str], types: set[str], sessions: set[int],
             t_from: float | None, t_to: float | None, t0: float) -> bool:
    if channels and rec.channel.channel not in channels:
        return False
    if types and rec.type not in types:
        return False
    if sessions and rec.channel.session not in sessions:
        return False
    t = rec.time - t0
    if t_from is not None and t < t_from:
        return False
    if t_to is not None and t > t_to:
        return False
    return True


class _Consoles:
    """One run's rich Consoles, each made on first use: rich's import and a Console are ~85 M
    instructions (7 ms), and a piped run writes its lines itself, a clean one nothing to stderr."""

    @functools.cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    @functools.cached_property
    def out(self) -> Console:
        from rich.console import Console

        # tables keep their width when piped (rich would fold them to 80 columns)
        return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)

    def colour(self) -> bool:
        """rich's is_terminal for stdout, without a Console when it is surely False: stdout is no
        tty and neither of the variables that make rich call it a terminal is set."""
        if not sys.stdout.isatty() and "FORCE_COLOR" not in os.environ and "TTY_COMPATIBLE" not in os.environ:
            return False
        return self.out.is_terminal


def _split(values: Iterable[str]) -> set[str]:
    return {v.strip().lower() for value in values for v in value.split(",") if v.strip()}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", required=False, type=click.Path(dir_okay=False))
@click.option("--live", is_flag=True, help="Capture live traffic instead of reading a file (needs scapy and root).")
@click.option("-i", "--interface", "iface", help="Interface for --live (default: scapy's default).")
@click.option("-f", "--filter", "bpf", help="BPF capture filter for --live, e.g. 'tcp portrange 5900-5999'.")
@click.option("--count", type=click.IntRange(min=1), help="--live: stop after this many packets.")
@click.option("--duration", type=click.FloatRange(min=0), help="--live: stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and per message.")
@click.option("--summary", is_flag=True, help="Per session and channel figures instead of messages (more than "
              "20 sessions: one line per session; --session N for its tables).")
@click.option("-v", "--verbose", is_flag=True, help="Show the whole decoded field tree of each message.")
@click.option("--channel", "channels", multiple=True, help="Only these channels (main, display, inputs, ...).")
@click.option("--type", "types", multiple=True, help="Only these message types (draw_copy, ping, link_mess, ...).")
@click.option("--session", "sessions", multiple=True, type=int, help="Only these sessions (numbers as shown).")
@click.option("--from", "t_from", type=float, help="Only from this many seconds into the capture.")
@click.option("--to", "t_to", type=float, help="Only up to this many seconds into the capture.")
@click.option("--tls-keylog", "keylog_path", type=click.Path(dir_okay=False),
              help="Decrypt TLS connections with this key log (NSS format, as SSLKEYLOGFILE writes it).")
@click.option("--leg", type=click.Choice(["both", "client", "server"]), default="both", show_default=True,
              help="A capture taken at a proxy holds each connection twice: show both legs (labelled), or one.")
def dissect(capture: str | None, live: bool, iface: str | None, bpf: str | None, count: int | None,
            duration: float | None, as_json: bool, summary: bool, verbose: bool, channels: tuple[str, ...],
            types: tuple[str, ...], sessions: tuple[int, ...], t_from: float | None, t_to: float | None,
            keylog_path: str | None, leg: str) -> None:
    """Decode every SPICE message of a pcap/pcapng capture or of live traffic.

    SPICE connections are found by their link magic on any port (and, in captures
    that start mid-session, by their data headers), reassembled from TCP, grouped
    into sessions, and decoded: link stage, every message of every channel, and the
    vdagent messages inside the main channel.

    \b
    Examples:
      spicetool dissect captures/quic.pcap
      spicetool dissect --channel inputs --type key_down,key_up session.pcapng
      spicetool dissect --json session.pcap | jq -c 'select(.channel=="display") | .type'
      spicetool dissect --summary session.pcap
      spicetool dissect --live -i lo -f 'tcp port 5900' --duration 30
      spicetool dissect --tls-keylog keys.log tls-session.pcapng

    \b
    TLS: a connection that starts with a TLS handshake (also inside HTTP CONNECT or
    a WebSocket) is decrypted with the secrets of --tls-keylog and those a pcapng
    carries itself in Decryption Secrets blocks (editcap --inject-secrets
    tls,keys.log), merged (TLS 1.2 and 1.3, AES-GCM/CCM and ChaCha20-Poly1305);
    without them it is shown once as "tls_encrypted" (version, cipher, SNI).
    --summary says where the keys came from (a key log's path, or the capture's
    Decryption Secrets block).

    \b
    Proxies: in a capture taken at a proxy (HTTP CONNECT, websockify, a TCP relay)
    each connection is there twice, as its client leg (client to proxy) and its
    server leg (proxy to server). The two legs are recognised by their equal link
    stage above their transports and shown as one session, each line labelled
    (main:0/client, main:0/server); --summary gives the proxy's added delay per
    direction (the nth message of a channel on one leg is the nth on the other).

    \b
    Transports: the first line of a proxied or layered connection names its
    leg and its transport chain, e.g. "CONNECT 127.0.0.1:5916 -> 200 Connection
    established", "WebSocket GET /websockify host h:p (binary) -> 101 Switching
    Protocols, spice-server's own port", "TLS 1.3, ... (decrypted)"; Proxmox's
    pvespiceproxy targets as VM id and node. A refused or unanswered CONNECT is
    the session's failure in --summary, with the proxy's status line.

    \b
    JSON keys: time (seconds from the first packet), frame, session, session_id,
    client, server, channel, channel_id, direction ("client": client to server,
    "server": server to client), layer (link, message, agent, gap, error), type,
    type_id, size (body bytes), fields; leg ("client" or "server") on a leg of a
    connection seen twice; transport (the chain as text) on a layered connection.
    --summary --json: per channel, also tls (version, cipher, SNI, or null),
    tls_keys (where its keys came from, or null), leg (or null), transport (or
    null), transport_chain (a list of {layer: connect|websocket|tls, ...}),
    failure (or null), and on legs twin and proxy_delay.

    \b
    Exit codes: 0 success; 1 no SPICE traffic found (also: TLS connections with no
    keys for them, or connections whose transport broke, said in the line); 2 bad
    usage; 3 input cannot be read (missing file, not a capture, not a key log); 4
    the capture is truncated or corrupt, a Decryption Secrets block included
    (everything before the damage was still shown); 5 a connection broke under
    SPICE while others were decoded: HTTP CONNECT refused or never answered, a
    WebSocket Upgrade refused or its framing broken (said in a warning line).
    With --summary a connection that failed or stayed encrypted is a row of the
    table (its failure, "not decrypted"): 1 only when there is no row at all.
    """
    con = _Consoles()
    if live == bool(capture):
        raise click.UsageError("give either a capture file or --live")
    if not live and (iface or bpf or count or duration is not None):
        raise click.UsageError("-i, -f, --count and --duration go with --live")
    try:
        if live:
            records = open_live(iface, bpf, count, duration, keylog=keylog_path, leg=leg)
        else:
            assert capture is not None
            records = open_records(capture, keylog=keylog_path, leg=leg)
    except CaptureFailure as exc:
        con.err.print(f"error: {exc}", style="red")
        sys.exit(exc.exit_code)

    chan_filter, type_filter, session_filter = _split(channels), _split(types), set(sessions)
    filtered = bool(chan_filter or type_filter or session_filter or t_from is not None or t_to is not None)
    stats = None
    if summary:
        from spicetool.capture import Summary

        stats = Summary()
    from spicetool.dissect.output import connection_line, field_tree, human_line, write_json

    t0: float | None = None
    seen_spice = False
    warnings = 0
    introduced: set[int] = set()  # channels whose connection line was written
    stdout = sys.stdout
    colour = con.colour()
    # a closed pipe (| head) ends the run quietly
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        for rec in records:
            if t0 is None:
                t0 = records.first_time  # the first packet's, which may carry no record
            if rec.layer in ("link", "message", "agent"):  # (a proxy's answer alone is no SPICE)
                seen_spice = True
            if rec.layer in ("gap", "error") and rec.type not in _SAID_APART:
                warnings += 1
            assert t0 is not None
            if filtered and not _matches(rec, chan_filter, type_filter, session_filter, t_from, t_to, t0):
                continue
            if stats is not None:
                stats.add(rec)
            elif as_json:
                write_json(rec, t0, stdout)
            else:
                ch = rec.channel
                if ch.index not in introduced and (ch.twin is not None or ch.transport):
                    introduced.add(ch.index)
                    line = connection_line(ch, records.channels)
                    if colour:
                        con.out.print(line, style="bold", markup=False)
                    else:
                        stdout.write(line + "\n")
                text, style = human_line(rec, t0)
                if colour:
                    con.out.print(text, style=style, markup=False)
                else:  # piped: plain lines, without rich's per-line cost
                    stdout.write(text)
                    stdout.write("\n")
                if verbose and rec.fields:
                    con.out.print(field_tree(rec.fields, rec.type))
    except KeyboardInterrupt:
        con.err.print("interrupted: stopping", style="yellow")

    t0 = records.first_time
    if stats is not None:
        if as_json:
            for st in stats.ordered():
                stdout.write(json.dumps(st.as_json(t0 or 0.0, records.delays), separators=(",", ":"), default=str)
                             + "\n")
        else:
            stats.render(con.out, t0 or 0.0, records.delays)
    stdout.flush()

    for line in records.warnings:  # malformed key log lines, skipped
        con.err.print(f"warning: {line}", style="yellow")
    failure = records.failure
    if failure is not None:
        con.err.print(f"error: {failure}", style="red")
        sys.exit(failure.exit_code)
    tls, broken = records.tls_problem(), records.transport_problem()
    # with --summary the table is the answer: a connection that failed or stayed encrypted is a row
    # that says so (its failure, "not decrypted"), the lines below warn, and it is found
    if not seen_spice and not (stats is not None and stats.channels):
        # one line: why nothing was found, when TLS or a transport is why
        why = tls or broken
        con.err.print(f"error: no SPICE traffic found in {records.name}" + (f": {why}" if why else ""), style="red")
        sys.exit(EXIT_NO_SPICE)
    if tls:
        con.err.print(f"warning: {tls}", style="yellow")
    if broken:
        con.err.print(f"warning: {broken}", style="yellow")
        if seen_spice:  # the other connections were decoded: its own exit code
            sys.exit(EXIT_TRANSPORT)
    if warnings:
        con.err.print(f"warning: {warnings} gaps or protocol errors (shown in place)", style="yellow")
