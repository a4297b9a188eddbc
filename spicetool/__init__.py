"""spicetool: dissect, render and replay SPICE remote-desktop sessions."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("spicetool")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
