"""Shared fixtures: the shipped corpus of real captures, and real peers (required under CI=true)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
IN_CI = os.environ.get("CI") == "true"


def corpus() -> list[Path]:
    """Every capture shipped in captures/ (pcap and pcapng)."""
    return sorted(p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng"))


def need_program(name: str) -> str:
    """Path of a real peer program; a failure under CI, a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (bash scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "capture" in metafunc.fixturenames:
        files = corpus()
        if not files and IN_CI:
            raise pytest.UsageError("captures/ holds no captures")
        metafunc.parametrize("capture", files, ids=[p.name for p in files])
