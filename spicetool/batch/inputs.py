"""The captures a batch's INPUT arguments name: files, folders (searched recursively) and globs."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from spicetool.triage.bundle import sha256 as sha256_file  # the hash a bundle's README gives

# what a folder is searched for (capture/ reads pcap and pcapng; .cap is what some tools call a pcap)
SUFFIXES = (".pcap", ".pcapng", ".cap")


class InputError(Exception):
    """An INPUT that names nothing: one line for the user."""


@dataclass(frozen=True)
class Found:
    path: str
    size: int


def _in_folder(folder: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, n) for n in sorted(files) if n.lower().endswith(SUFFIXES)]
    return out


def expand(inputs: list[str]) -> list[Found]:
    """Every capture the inputs name, in the order given, each path once. A file is taken whatever its
    name (the user named it); a folder and a glob give only files with a capture suffix."""
    paths: list[str] = []
    for arg in inputs:
        if os.path.isdir(arg):
            paths += _in_folder(arg)
        elif os.path.isfile(arg):
            paths.append(arg)
        elif glob.has_magic(arg):
            hits = sorted(glob.glob(arg, recursive=True))
            if not hits:
                raise InputError(f"{arg}: no file matches")
            for hit in hits:
                if os.path.isdir(hit):
                    paths += _in_folder(hit)
                elif hit.lower().endswith(SUFFIXES):
                    paths.append(hit)
        else:
            raise InputError(f"{arg}: No such file or directory")
    seen: set[str] = set()
    out = []
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        try:
            out.append(Found(p, os.path.getsize(p)))
        except OSError as exc:
            raise InputError(f"{p}: {exc.strerror or exc}") from None
    return out


class HashCache:
    """sha256 by (real path, size, mtime): a rerun over a terabyte archive does not read it all again
    just to learn what it already did. Kept in OUT/hashes.json."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.known: dict[str, list] = {}
        try:
            with open(path, encoding="utf-8") as f:
                self.known = json.load(f)
        except (OSError, ValueError):
            pass
        self.changed = False

    def sha256(self, path: str) -> str:
        st = os.stat(path)
        key = os.path.realpath(path)
        hit = self.known.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = sha256_file(path)
        self.known[key] = [st.st_size, st.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.known, f)
        os.replace(tmp, self.path)
        self.changed = False
