"""`spicetool record`: a recording proxy between a real SPICE client and a real SPICE server."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_SETUP = 0, 3


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_SETUP)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", "listen_s", required=True, metavar="HOST:PORT",
              help="Where clients connect (point remote-viewer/spicy here).")
@click.option("--target", "target_s", required=True, metavar="HOST:PORT", help="The real SPICE server.")
@click.option("-w", "--write", "out", required=True, type=click.Path(dir_okay=False),
              help="Capture file to write; .pcapng gives pcapng, anything else classic pcap.")
@click.option("--tls-listen", is_flag=True, help="Speak TLS to the client (like a server's tls-port).")
@click.option("--cert", type=click.Path(dir_okay=False), help="--tls-listen: certificate (PEM); default: generate one.")
@click.option("--key", type=click.Path(dir_okay=False), help="--tls-listen: private key (PEM) if not inside --cert.")
@click.option("--write-cert", type=click.Path(dir_okay=False),
              help="--tls-listen: save the certificate presented to clients (give it to them as CA file).")
@click.option("--tls-target", is_flag=True, help="Speak TLS to the server (its tls-port).")
@click.option("--ca", type=click.Path(dir_okay=False), help="--tls-target: verify the server against this CA (PEM).")
@click.option("--tls-keylog", "keylog", type=click.Path(dir_okay=False),
              help="Append the TLS secrets of both sides to this key log (NSS format, as SSLKEYLOGFILE), so a "
                   "capture of the encrypted traffic can be decrypted (dissect --tls-keylog, Wireshark).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("-q", "--quiet", is_flag=True, help="Do not report connections on stderr.")
def record(listen_s: str, target_s: str, out: str, tls_listen: bool, cert: str | None, key: str | None,
           write_cert: str | None, tls_target: bool, ca: str | None, keylog: str | None, duration: float | None,
           quiet: bool) -> None:
    """Record a live SPICE session by standing between client and server.

    Every byte is passed through unchanged, in both directions. Each client
    connection (one per SPICE channel) is written as its own TCP stream with
    synthetic framing (handshake, sequence numbers, FIN at close) and the true
    arrival times, so `spicetool dissect`, Wireshark and tshark read the file.
    With TLS on either side the file holds the session in clear text. The file
    is flushed after every segment; Ctrl-C or SIGTERM ends the recording cleanly.

    \b
    Examples:
      spicetool record --listen 127.0.0.1:5999 --target 127.0.0.1:5900 -w session.pcapng
      remote-viewer spice://127.0.0.1:5999          # in another terminal
    \b
      # a TLS server; clients speak TLS to us too, with a generated certificate
      spicetool record --listen :6001 --target vmhost:5901 --tls-target \\
          --tls-listen --write-cert proxy-ca.pem -w session.pcap
      spicy -h 127.0.0.1 -s 6001 --spice-ca-file=proxy-ca.pem
    \b
      spicetool record --listen :5999 --target 127.0.0.1:5900 -w s.pcap --duration 60
    \b
      # also keep the TLS secrets: a capture of the encrypted traffic can then be read
      spicetool record --listen :6001 --target vmhost:5901 --tls-target --tls-listen \\
          --tls-keylog keys.log -w clear.pcapng
      spicetool dissect --tls-keylog keys.log encrypted.pcapng

    \b
    Exit codes: 0 stopped cleanly; 2 bad usage; 3 cannot listen, write the file
    or use the TLS files.
    """
    from spicetool.record.proxy import RecordingProxy, parse_hostport

    try:
        listen, target = parse_hostport(listen_s), parse_hostport(target_s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not target.host:
        raise click.UsageError("--target needs a host")
    if (cert or key or write_cert) and not tls_listen:
        raise click.UsageError("--cert, --key and --write-cert go with --tls-listen")
    if ca and not tls_target:
        raise click.UsageError("--ca goes with --tls-target")
    if keylog and not (tls_listen or tls_target):
        raise click.UsageError("--tls-keylog goes with --tls-listen or --tls-target")

    from spicetool.capture import TlsSetupError, client_context, fingerprint, server_context, set_keylog

    log = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    listen_ctx = target_ctx = None
    try:
        if tls_listen:
            hosts = [h for h in (listen.host, "localhost", "127.0.0.1") if h and h not in ("0.0.0.0", "::")]
            listen_ctx, cert_pem = server_context(cert, key, hosts)
            log(f"TLS toward clients: certificate sha256 {fingerprint(cert_pem)}")
            if write_cert:
                Path(write_cert).write_bytes(cert_pem)
        if tls_target:
            target_ctx = client_context(ca)
        if keylog:
            for ctx in (listen_ctx, target_ctx):
                if ctx is not None:
                    set_keylog(ctx, keylog)
    except TlsSetupError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{write_cert}: {exc.strerror or exc}")

    try:
        stream = open(out, "wb")
    except OSError as exc:
        _fail(f"{out}: {exc.strerror or exc}")
    from spicetool.capture import PcapngWriter, PcapWriter, Recording

    writer = PcapngWriter(stream) if out.endswith(".pcapng") else PcapWriter(stream)
    recording = Recording(stream, writer)
    recording.flush()
    proxy = RecordingProxy(listen, target, recording, listen_ctx, target_ctx, log)
    try:
        asyncio.run(_serve(proxy, duration, log))
    except OSError as exc:  # the listening socket
        recording.close()
        _fail(f"cannot listen on {listen}: {exc.strerror or exc}")
    recording.close()
    log(f"recorded {recording.streams} connections to {out}")


async def _serve(proxy, duration: float | None, log) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await proxy.start()
    log(f"listening on {proxy.listen}{' (TLS)' if proxy.listen_tls else ''}, forwarding to "
        f"{proxy.target}{' (TLS)' if proxy.target_tls else ''}")
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        pass
    log("stopping")
    await proxy.stop()
