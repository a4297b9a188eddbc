"""Fixtures of the serve tests (helpers in serve_helpers.py)."""
from __future__ import annotations

import pytest

from serve_helpers import ServerThread, release_displays


@pytest.fixture(autouse=True)
def _display_locks():
    yield
    release_displays()


@pytest.fixture
def spice_server(tmp_path):
    """A factory of servers in this test process; all stopped at the end of the test."""
    servers: list[ServerThread] = []

    def make(**kw) -> ServerThread:
        s = ServerThread(tmp_path, **kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()
