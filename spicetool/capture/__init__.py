"""Files and interfaces to SPICE connections: pcap/pcapng reading and writing, live capture,
TCP reassembly, TLS and key logs, sessions.

What the rest of spicetool uses is named here; the modules behind the names are this
package's own business:

- `open_records(path, keylog=..., sessions=..., channels=...)`, `open_live(...)`: a capture's
  `Record`s (each on its `Channel`), as a `CaptureRecords`; every damage as one `CaptureFailure`
- `open_capture(path)`: the TCP `Segment`s of a file, for tools that rewrite captures
- `PcapWriter`, `PcapngWriter`: segments to files; `PlainStreams`: a capture's SPICE connections
  as plain TCP (`export`); `Recording`, `TcpStream`: a proxy's
  connections as TCP streams; `LinkStageCuts`: where a channel's link stage ends
- `Summary`: per-channel figures of records; `KeyLog`, `load_keylog`; TLS contexts for a proxy

Names are imported on first use, so that writing a pcap does not import the protocol stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spicetool.lazy_names import lazy_names

_EXPORTS = {
    "errors": ("CaptureDamaged", "CaptureError", "CaptureFailure", "EXIT_DAMAGED", "EXIT_NO_SPICE",
               "EXIT_TRANSPORT", "EXIT_UNREADABLE"),
    "records": ("CaptureRecords", "open_live", "open_records"),
    "files": ("CaptureReader", "open_capture"),
    "frames": ("Segment", "SegmentWriter", "TCP_ACK", "TCP_FIN", "TCP_PSH", "TCP_RST", "TCP_SYN"),
    "pcap": ("PcapWriter",),
    "pcapng": ("PcapngWriter", "SECRETS_TLS_KEY_LOG"),
    "sessions": ("Channel", "Record", "SessionDecoder", "decode_segments"),
    "keylog": ("KeyLog", "KeyLogError", "load_keylog"),
    "summary": ("ChannelStats", "Summary"),
    "tcpstream": ("Recording", "TcpStream"),
    "linkcut": ("LinkStageCuts",),
    "plain": ("PlainStreams",),
    "tls_contexts": ("TlsSetupError", "client_context", "fingerprint", "self_signed", "server_context",
                     "set_keylog"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [  # the names of _EXPORTS (a test holds them equal)
    "EXIT_DAMAGED", "EXIT_NO_SPICE", "EXIT_TRANSPORT", "EXIT_UNREADABLE", "SECRETS_TLS_KEY_LOG", "TCP_ACK", "TCP_FIN", "TCP_PSH",
    "TCP_RST", "TCP_SYN", "CaptureDamaged", "CaptureError", "CaptureFailure", "CaptureReader", "CaptureRecords",
    "Channel", "ChannelStats", "KeyLog", "KeyLogError", "LinkStageCuts", "PcapWriter", "PcapngWriter", "PlainStreams", "Record",
    "Recording", "Segment", "SegmentWriter", "SessionDecoder", "Summary", "TcpStream", "TlsSetupError",
    "client_context", "decode_segments", "fingerprint", "load_keylog", "open_capture", "open_live", "open_records",
    "self_signed", "server_context", "set_keylog",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _MODULE_OF)


if TYPE_CHECKING:
    from spicetool.capture.errors import (
        EXIT_DAMAGED,
        EXIT_NO_SPICE,
        EXIT_TRANSPORT,
        EXIT_UNREADABLE,
        CaptureDamaged,
        CaptureError,
        CaptureFailure,
    )
    from spicetool.capture.files import CaptureReader, open_capture
    from spicetool.capture.frames import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, Segment, SegmentWriter
    from spicetool.capture.keylog import KeyLog, KeyLogError, load_keylog
    from spicetool.capture.linkcut import LinkStageCuts
    from spicetool.capture.pcap import PcapWriter
    from spicetool.capture.pcapng import SECRETS_TLS_KEY_LOG, PcapngWriter
    from spicetool.capture.plain import PlainStreams
    from spicetool.capture.records import CaptureRecords, open_live, open_records
    from spicetool.capture.sessions import Channel, Record, SessionDecoder, decode_segments
    from spicetool.capture.summary import ChannelStats, Summary
    from spicetool.capture.tcpstream import Recording, TcpStream
    from spicetool.capture.tls_contexts import (
        TlsSetupError,
        client_context,
        fingerprint,
        self_signed,
        server_context,
        set_keylog,
    )
