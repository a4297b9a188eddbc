"""The display channel: surfaces and draws from the device, through the worker."""
from __future__ import annotations

from spicetool.qxl import worker as worker
from spicetool.qxl.commands import Command, CopyBits, CopySurface, DrawCopy, DrawFill, StreamCreate, StreamDestroy
from spicetool.qxl.device import QxlDevice
from spicetool.qxl.images import CLIENT_PREFERENCES, ClientImages
from spicetool.qxl.pixmap_cache import PixmapCache
from spicetool.server.channel import ChannelClient, ClientDropped, PipeItem
from spicetool.stack import Message


class DisplayChannel(ChannelClient):
    name = "display"
    handle_acks = True
    holds_snapshot = False  # a collapse snapshot of the surfaces, counted in the server's MAX_SNAPSHOTS

    @property
    def device(self) -> QxlDevice:
        return self.server.display_device(self.link.channel_id)

    def on_connect(self) -> None:
        if self.server.replay_note is not None:
            self.server.log(f"{self.peer} display: {self.server.replay_note}")
        self.monitors = "monitors_config" in self.link.channel_caps
        self.lz4 = "lz4_compression" in self.link.channel_caps
        # The client keeps one GLZ window for all its display channels (spice-gtk's session
        # caches): only the first display channel sends GLZ (LZ instead on the others), so that
        # no two encoders number images into that one window.
        glz = self.link.channel_id == self.server.first_display
        if glz and self.server.glz_windows >= self.server.max_glz_windows:
            glz = False   # the server's GLZ windows are all taken (state.py MAX_GLZ_WINDOWS)
            self.server.stats["glz_windows_refused"] += 1
        self.holds_glz = glz
        if glz:
            self.server.glz_windows += 1
        self.images = ClientImages(self.server.image_compression, self.lz4, self.server.stats, glz)
        self.push_set_ack()
        device = self.device
        surfaces = worker.snapshot(device)  # the picture now; encoded when sent, in send order
        self.push_item(PipeItem(lambda: worker.display_state(surfaces, self.monitors, self.images), False,
                                sum(px.nbytes for _, px, _ in surfaces)))
        # MJPEG: every client without MULTI_CODEC, and those that announce CODEC_MJPEG
        caps = self.link.channel_caps
        self.mjpeg = "multi_codec" not in caps or "codec_mjpeg" in caps
        self.streams: set[int] = set()      # the video streams this client was told of
        for s in (device.streams.active.values() if device.streams is not None else ()):
            self.on_command(StreamCreate(s.id, s.rect))   # as spice-server after MARK
        device.listeners.append(self.on_command)

    def on_command(self, cmd: Command) -> None:
        if isinstance(cmd, StreamCreate):
            if self.mjpeg:
                self.streams.add(cmd.stream_id)
                self.push_item(PipeItem(lambda: [worker.stream_create(cmd)], False, 64))
            return
        if isinstance(cmd, StreamDestroy):
            if cmd.stream_id in self.streams:
                self.streams.discard(cmd.stream_id)
                self.push_item(PipeItem(lambda: [("stream_destroy", {"id": cmd.stream_id})], False, 16))
            return
        if isinstance(cmd, DrawCopy) and cmd.stream in self.streams:
            mm = cmd.shared.setdefault("mm_time", self.server.mm_time() + worker.STREAM_DELAY_MS)
            self.server.stats["stream_frames"] += 1
            self.push_item(PipeItem(lambda: [worker.stream_frame(cmd, mm)], True, cmd.pixels.nbytes // 10))
            return
        draw = isinstance(cmd, (DrawFill, DrawCopy, CopyBits, CopySurface))
        size = cmd.pixels.nbytes if isinstance(cmd, DrawCopy) else 64
        self.push_item(PipeItem(lambda: worker.display_messages(cmd, self.monitors, self.images), draw, size))

    def collapse(self) -> PipeItem | None:
        # The surfaces as they are now, where the dropped draws end: the commands still to come
        # go on from this state (a scroll moves what is there, so it must not be applied twice).
        # Counted as no bytes in the pipe: a client holds one at most (each collapse drops the
        # last), and a surface larger than the pipe's bound must not collapse it again at once.
        # A snapshot is a copy of every surface: past MAX_SNAPSHOTS clients holding one at once, the
        # slow client is disconnected instead (hundreds that never read must not hold a screen each).
        if not self.holds_snapshot:
            if self.server.snapshots >= self.server.max_snapshots:
                self.server.stats["slow_clients_dropped"] += 1
                return None
            self.server.snapshots += 1
            self.holds_snapshot = True
        surfaces = worker.snapshot(self.device)

        def refresh():
            self._release_snapshot()
            return worker.surfaces_refresh(surfaces, self.images)
        return PipeItem(refresh, True, 0)

    def _release_snapshot(self) -> None:
        if self.holds_snapshot:
            self.holds_snapshot = False
            self.server.snapshots -= 1

    def on_message(self, msg: Message) -> None:
        if msg.name == "init":
            if self.images.cache is not None:  # as spice-server: INIT once per channel
                raise ClientDropped("a second display init")
            self.client_init = msg.fields
            # images cached from here on, in the client's pixmap cache of the size it announced;
            # the client shares that cache between its display channels, so each of ours mirrors
            # an equal part of it (the devices' image ids never meet: see replay/timeline.py)
            size = msg.fields["pixmap_cache_size"] // len(self.server.displays)
            self.images.cache = PixmapCache(size)
        elif msg.name == "preferred_compression":
            # spice-server lets the client's preference override the server setting
            wanted = CLIENT_PREFERENCES.get(msg.fields["image_compression"])
            if wanted is None:
                raise ClientDropped(f"invalid preferred compression {msg.fields['image_compression']}")
            if wanted != self.images.codec:
                self.images.set_compression(wanted)
            self.server.log(f"{self.peer} display: client prefers {wanted}", verbose=True)
        elif msg.name in ("stream_report", "preferred_video_codec_type", "gl_draw_done"):
            pass
        else:
            raise ClientDropped(f"unexpected display message {msg.name}")

    def on_close(self) -> None:
        self._release_snapshot()
        if getattr(self, "holds_glz", False):
            self.holds_glz = False
            self.server.glz_windows -= 1
        try:
            self.device.listeners.remove(self.on_command)
        except ValueError:
            pass
