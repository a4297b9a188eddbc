"""Test-session hooks and fixtures; the shared helpers live in support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import (  # noqa: F401  (ROOT and need_program: for test files that import them from here)
    CAPTURES, FRESH_SESSIONS, IN_CI, ROOT, FreshCaptures, corpus, fresh_enabled, need_program,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "capture" in metafunc.fixturenames:
        files = corpus()
        if not files and IN_CI:
            raise pytest.UsageError("captures/ holds no captures")
        names = [p.name for p in files] + ([f"fresh:{n}" for n in FRESH_SESSIONS] if fresh_enabled() else [])
        metafunc.parametrize("capture", names, indirect=True)


@pytest.fixture(scope="session")
def fresh_captures(tmp_path_factory: pytest.TempPathFactory) -> FreshCaptures:
    return FreshCaptures(tmp_path_factory.mktemp("fresh-captures"))


@pytest.fixture
def capture(request: pytest.FixtureRequest, fresh_captures: FreshCaptures) -> Path:
    """A real capture: one of the corpus, or a fresh one recorded during this run.

    Beside it lie NAME.png (the ground-truth framebuffer at the end) and NAME.json (settings).
    """
    name: str = request.param
    if name.startswith("fresh:"):
        return fresh_captures.get(name.removeprefix("fresh:"))
    return CAPTURES / name


def pytest_terminal_summary(terminalreporter) -> None:
    """How long each fresh deployment session took to record (the suite's cost of them)."""
    from support import FRESH_DEPLOYMENT_RECORDER as rec
    if rec.seconds:
        times = ", ".join(f"{n} {s:.1f} s" for n, s in rec.seconds.items())
        terminalreporter.write_line(f"fresh deployment sessions recorded in {sum(rec.seconds.values()):.0f} s: {times}")
