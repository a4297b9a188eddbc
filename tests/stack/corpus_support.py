"""Corpus captures for the stack tests (a failure under CI=true when missing, a skip elsewhere)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def corpus_files() -> list[Path]:
    if not CAPTURES.is_dir():
        return []
    return sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


def require_corpus() -> list[Path]:
    """Corpus captures; a missing corpus fails under CI=true, else skips."""
    from tcp_payloads import tshark_available
    files = corpus_files()
    problem = None
    if not files:
        problem = f"no captures in {CAPTURES}"
    elif not tshark_available():
        problem = "tshark is not installed"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return files
