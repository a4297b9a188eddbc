"""spicetool: dissect, render and replay SPICE remote-desktop sessions."""
from __future__ import annotations


def __getattr__(name: str) -> str:
    # the version is looked up when asked for: importlib.metadata costs ~20 ms at every start
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("spicetool")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'spicetool' has no attribute {name!r}")
