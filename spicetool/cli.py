"""The `spicetool` command line. Subcommands are imported only when run, so `--help` is fast."""

from __future__ import annotations

import importlib

import click

from spicetool import __version__

# name -> "module:attribute" of a click command
SUBCOMMANDS: dict[str, str] = {
    "dissect": "spicetool.dissect.command:dissect",
    "render": "spicetool.render.command:render",
    "serve": "spicetool.replay.command:serve",
    "record": "spicetool.record.command:record",
    "report": "spicetool.triage.command:report",
    "stats": "spicetool.triage.command:stats",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="spicetool")
def main() -> None:
    """Dissect, render and replay SPICE remote-desktop sessions.

    \b
    Examples:
      spicetool dissect session.pcap
      spicetool dissect --json session.pcapng | jq .type
      spicetool dissect --summary session.pcap
    """
