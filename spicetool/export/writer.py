"""One capture to its plain export: read it once, redact on the way if asked, write the pcapng."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Collection

from spicetool.capture import CaptureFailure, KeyLog, PcapngWriter, PlainStreams, open_records
from spicetool.export.redact import Redactor
from spicetool.stack import Direction


@dataclass
class ExportResult:
    """What an export wrote, and what it read."""

    connections: int = 0  # SPICE connections written
    messages: int = 0  # SPICE messages (and link records) read in the kept connections
    redacted: dict[str, int] = field(default_factory=dict)  # keys, clipboard, file_data
    failure: CaptureFailure | None = None  # the capture broke off part-way (what came before is written)
    encrypted: int = 0  # TLS connections that could not be decrypted (left out)


def export_capture(source: str, out: BinaryIO, *, keylog: KeyLog | str | None = None,
                   sessions: Collection[int] | None = None, redact: bool = False) -> ExportResult:
    """Read `source` and write its SPICE connections (of `sessions`, or all) to `out` as pcapng.

    CaptureFailure when the capture or key log cannot be read; RedactFailure (nothing written)
    when --redact cannot be honoured. Nothing is written when no SPICE connection was found
    (result.connections == 0)."""
    streams = PlainStreams()
    records = open_records(source, keylog=keylog, tap=streams.segment, payload_tap=streams.payload,
                           leg="both")  # every connection of a proxy's capture, both legs as captured
    redactor = Redactor(streams) if redact else None
    result = ExportResult()
    wanted = set(sessions or ())
    try:
        for rec in records:
            if rec.type == "tls_encrypted":
                result.encrypted += 1
            if wanted and rec.channel.session not in wanted:
                continue
            if rec.layer in ("link", "message"):
                result.messages += 1
            if rec.layer == "link":
                ev = rec.event
                streams.cut(rec.channel, rec.direction is Direction.CLIENT, ev.offset + ev.size)
            if redactor is not None:
                redactor.record(rec)
    finally:
        records.close()
    result.failure = records.failure
    if redactor is not None:
        result.redacted = dict(redactor.counts)
    if not any(pc.channel is not None and (not wanted or pc.channel.session in wanted) for pc in streams):
        return result
    writer = PcapngWriter(out, application="spicetool export")
    result.connections = streams.write(writer, keep=lambda ch: not wanted or ch.session in wanted)
    return result
