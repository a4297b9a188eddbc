"""Wiring for `spicetool serve`: device, demo loop, server, until interrupted."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from rich.console import Console

from .demo import DemoDesktop, animate
from .inputlog import InputLog
from .qxl import QxlDevice
from .server import SpiceServer


async def run_demo(host: str, port: int, password: bytes | None, size: tuple[int, int], fps: float,
                   still: bool, input_log: Path | None, name: str, link_timeout: float,
                   ping_interval: float, verbose: bool, console: Console,
                   image_compression: str = "off") -> None:
    device = QxlDevice()
    desktop = DemoDesktop(device, *size)
    desktop.draw_initial()

    def echo(record: dict) -> None:
        fields = {k: v for k, v in record.items() if k not in ("time", "wall", "session", "client")}
        console.print(f"[cyan]input[/] {record['client']} {fields}")

    log = InputLog(input_log, echo if verbose else None)
    server = SpiceServer(device, password, log, name=name, link_timeout=link_timeout,
                         ping_interval=ping_interval, log=lambda t: console.print(t), verbose=verbose,
                         image_compression=image_compression)
    await server.start(host, port)
    console.print(f"serving a {size[0]}x{size[1]} demo desktop on spice://{host}:{server.port} "
                  f"({'password required' if password else 'no password'}); Ctrl-C stops")
    running = asyncio.Event()
    if not still:
        running.set()
    anim = asyncio.create_task(animate(desktop, fps, running))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        anim.cancel()
        await server.stop()
        log.close()
        console.print(f"stopped; {log.count} input events logged")
