"""The `spicetool` command line. Subcommands are imported only when run, so `--help` is fast."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command
SUBCOMMANDS: dict[str, str] = {
    "batch": "spicetool.batch.command:batch",
    "bundle": "spicetool.triage.bundle:bundle",
    "diagnose": "spicetool.triage.diagnose:diagnose",
    "dissect": "spicetool.dissect.command:dissect",
    "export": "spicetool.export.command:export",
    "render": "spicetool.render.command:render",
    "serve": "spicetool.replay.serve_command:serve",
    "replay": "spicetool.replay.client_command:replay",
    "record": "spicetool.record.command:record",
    "report": "spicetool.triage.command:report",
    "stats": "spicetool.triage.command:stats",
}
# the one-line help of each, so that `spicetool --help` imports none of them
SHORT_HELP: dict[str, str] = {
    "batch": "Many captures on a process pool or a Dask cluster: reports, a Parquet dataset, an index.",
    "bundle": "One zip for a ticket: report, stats, findings, final picture, plain export.",
    "diagnose": "What went wrong in a capture: findings with their evidence.",
    "dissect": "Decode every SPICE message of a capture or of live traffic.",
    "export": "Write a TLS, proxied or WebSocket capture as plain SPICE over TCP.",
    "render": "Rebuild what the session's screen showed, as video or pictures.",
    "serve": "Serve a desktop (built-in, or replayed from a capture) to real SPICE clients.",
    "replay": "Replay a captured client's side to a new server, recording the new session.",
    "record": "Record a live session as a proxy between client and server.",
    "report": "Write a self-contained HTML report of a capture.",
    "stats": "Figures of every session in a capture: bandwidth, latency, images, inputs.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="spicetool", prog_name="spicetool")
def main() -> None:
    """Dissect, render and replay SPICE remote-desktop sessions.

    \b
    Examples:
      spicetool dissect session.pcap
      spicetool dissect --json session.pcapng | jq .type
      spicetool stats session.pcap
      spicetool render session.pcap -o session.mp4
      spicetool serve --replay session.pcap --disable-ticketing
    Each command's --help has more.
    """
