"""What can go wrong with a capture, as the one line a command prints and its exit code.

CaptureFailure is the one type the commands catch: the capture (or its key log) cannot be
read at all (CaptureError, KeyLogError: exit 3), it breaks off or is corrupt part-way
(`CaptureRecords.failure`: exit 4, what came before was still read), or a live capture
cannot start. CaptureDamaged is the readers' own signal that a file breaks off; it never
leaves them: they end there and say where in their `damage`.
"""

from __future__ import annotations

# The exit codes the commands document (dissect, stats, report); EXIT_TRANSPORT: dissect's, a
# connection broken under SPICE (a CONNECT refused or unanswered, a WebSocket refused or its framing broken)
EXIT_NO_SPICE, EXIT_UNREADABLE, EXIT_DAMAGED, EXIT_TRANSPORT = 1, 3, 4, 5


class CaptureFailure(Exception):
    """A capture that cannot be read, or not to its end: `str()` is the one line to print after "error: "."""

    exit_code = EXIT_UNREADABLE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class CaptureError(CaptureFailure):
    """The file cannot be read as a capture at all (one line, for the user)."""


class CaptureDamaged(Exception):
    """The capture ends or breaks in the middle: what came before is good."""
