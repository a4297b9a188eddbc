"""The SPICE password of a command line: --password, or the first line of --password-file."""
from __future__ import annotations

from pathlib import Path

import click


def given_password(password: str | None, password_file: Path | None) -> bytes:
    """The password's bytes ("" when neither is given); an unreadable file is a usage error."""
    if password_file is None:
        return (password or "").encode()
    try:
        raw = password_file.read_bytes()
    except OSError as e:
        raise click.UsageError(f"cannot read --password-file: {e.strerror}") from None
    return raw.split(b"\n", 1)[0].rstrip(b"\r")
