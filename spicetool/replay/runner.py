"""Wiring for `spicetool serve`: device, what drives it (demo loop or capture replay), server,
until interrupted."""
from __future__ import annotations

import asyncio
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from spicetool.qxl.demo import DemoDesktop, animate
from spicetool.qxl.device import QxlDevice
from spicetool.qxl.worker import Prebuilder
from spicetool.replay.heads import HeadsReplay
from spicetool.server.inputlog import InputLog
from spicetool.server.server import SpiceServer


@dataclass
class ServeOptions:
    host: str
    port: int
    password: bytes | None
    input_log: Path | None = None
    name: str = "spicetool"
    link_timeout: float = 10.0
    ping_interval: float = 10.0
    verbose: bool = False
    image_compression: str = "auto_glz"   # spice-server's default
    # demo
    size: tuple[int, int] = (1024, 768)
    fps: float = 10.0
    still: bool = False
    # replay
    replay: Path | None = None
    tls_keylog: Path | None = None
    speed: float = 1.0
    loop: bool = False
    start: float = 0.0
    stop: float | None = None
    pause_at: float | None = None
    replay_mode: str = "pictures"   # or commands: the captured draws as their own commands
    # agent
    agent: bool = False
    agent_dir: Path | None = None
    agent_max_file: int = 256 * 1024 * 1024
    # TLS
    tls_port: int | None = None
    cert: Path | None = None
    key: Path | None = None
    secure_channels: set = field(default_factory=set)
    streaming_video: str = "off"   # off, all or filter (as spice-server's option)


def _with_streams(device: QxlDevice, opts: ServeOptions) -> QxlDevice:
    if opts.streaming_video != "off":
        from spicetool.qxl.streams import VideoStreams
        device.streams = VideoStreams(opts.streaming_video)
    return device


async def run(opts: ServeOptions, console: Console) -> None:
    device = _with_streams(QxlDevice(), opts)
    displays = None
    if opts.replay is not None:
        # one device per captured display channel
        replay = HeadsReplay(str(opts.replay), opts.speed, opts.loop, start=opts.start, stop=opts.stop,
                             pause_at=opts.pause_at,
                             keylog=str(opts.tls_keylog) if opts.tls_keylog is not None else None,
                             warn=lambda t: console.print(f"warning: {t}", markup=False),
                             mode=opts.replay_mode)
        for dev in replay.devices.values():
            _with_streams(dev, opts)
        sizes = replay.prepare()
        displays = replay.devices   # those with a picture
        device = displays[min(displays)]
        heads = ", ".join(f"{w}x{h}" if len(sizes) == 1 else f"display {cid} {w}x{h}"
                          for cid, (w, h) in sizes.items())
        what = f"a replay of {opts.replay.name} ({heads}, {opts.replay_mode} mode, speed {opts.speed:g}{', looping' if opts.loop else ''})"
    else:
        desktop = DemoDesktop(device, *opts.size)
        desktop.draw_initial()
        what = f"a {opts.size[0]}x{opts.size[1]} demo desktop"

    def echo(record: dict) -> None:
        fields = {k: v for k, v in record.items() if k not in ("time", "wall", "session", "client")}
        console.print(f"input {record['client']} {fields}", markup=False)

    log = InputLog(opts.input_log, echo if opts.verbose else None)
    agent = None
    if opts.agent:
        from spicetool.server.agent import GuestAgent
        # the demo's guest follows the client's monitor size; a replay keeps the capture's
        agent = GuestAgent(opts.agent_dir, opts.agent_max_file,
                           resize=desktop.resize if opts.replay is None else None)
    server = SpiceServer(device, opts.password, log, name=opts.name, link_timeout=opts.link_timeout,
                         ping_interval=opts.ping_interval,
                         log=lambda t: console.print(t, markup=False),  # client bytes are no markup
                         verbose=opts.verbose, image_compression=opts.image_compression,
                         agent=agent, secure_channels=opts.secure_channels, displays=displays)
    if opts.replay is not None:
        server.replay_note = (
            "replay mode commands: the whole screen as it is now, then the captured fills, image "
            "copies and copy_bits as captured; other draws as pictures of what they changed"
            if opts.replay_mode == "commands" else "replay mode pictures: changed bands of the rendered picture")
    if opts.replay is not None:  # new draws are encoded ahead, off the event loop
        replay.prepare_command = Prebuilder(lambda: server.image_compression)
    await server.start(opts.host, opts.port)
    tls_note = ""
    if opts.tls_port is not None:
        from spicetool.server.tls import self_signed, server_context
        cert, key = opts.cert, opts.key
        if cert is None:
            cert, key = self_signed(opts.host, Path(tempfile.mkdtemp(prefix="spicetool-serve-tls-")))
            console.print(f"self-signed certificate (the client's CA file): {cert}", markup=False)
        await server.start_tls(opts.host, opts.tls_port, server_context(cert, key))
        tls_note = f", TLS on port {server.tls_port}"
    console.print(f"serving {what} on spice://{opts.host}:{server.port} "
                  f"({'password required' if opts.password else 'no password'}{tls_note}); Ctrl-C stops")
    stop = asyncio.Event()
    if opts.replay is not None:
        driver = asyncio.create_task(replay.run())

        def ended(t: asyncio.Task) -> None:
            if t.cancelled():
                return
            if t.exception() is None:
                damage = replay.timeline.damage
                if damage:
                    console.print(f"warning: {opts.replay}: {damage}; replayed what came before", markup=False)
                if opts.replay_mode == "commands":
                    sent = sum(h.timeline.converted for h in replay.heads.values())
                    console.print(f"replay mode commands: {sent} captured draws sent as their own commands, "
                                  "the rest (and every client's first picture) as pictures", markup=False)
                console.print("replay finished; holding its last picture")
            else:
                console.print(f"replay stopped: {t.exception()}", markup=False)
        driver.add_done_callback(ended)
    else:
        running = asyncio.Event()
        if not opts.still:
            running.set()
        driver = asyncio.create_task(animate(desktop, opts.fps, running))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if opts.replay is not None and opts.pause_at is not None:
        def held() -> None:
            console.print(f"held at {opts.pause_at:g} s; SIGUSR1 goes on")

        async def watch() -> None:
            await replay.paused.wait()
            held()
        asyncio.create_task(watch())
        loop.add_signal_handler(signal.SIGUSR1, replay.resume)
    try:
        await stop.wait()
    finally:
        driver.cancel()
        await server.stop()
        log.close()
        console.print(f"stopped; {log.count} input events logged")
