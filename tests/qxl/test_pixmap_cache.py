"""The pixmap cache as spice-server keeps it, with spicy (spice-gtk) as the client: images that
come again go out as FROM_CACHE, the cache stays within the size spicy announced (evictions
told with INVAL_LIST first), and spicy still ends on the captured session's final picture
pixel for pixel; Wireshark finds nothing malformed in that traffic and our dissector sees the
same cache traffic the server counted."""
from __future__ import annotations

import collections
import time

import numpy as np
import pytest
from serve_helpers import (
    ROOT,
    free_display,
    need,
    peers,
    served_display_messages,
    spice_server,  # noqa: F401 (fixture)
)
from serve_helpers import wait_for_picture

CACHE_BYTES = 256 << 10   # spicy announces a quarter of this, in pixels: a few text lines


def test_spicy_with_a_small_cache_ends_on_the_captured_picture(spice_server, tmp_path):
    need("spicy"), need("Xvfb"), need("tshark"), need("xdotool"), need("xwd")
    from spicetool.render.frames import picture_at
    path = ROOT / "captures" / "typing.pcapng"
    if not path.exists():
        pytest.skip("typing.pcapng is not in captures/")
    expected = picture_at(str(path)).image
    srv = spice_server(replay=path, speed=4)
    cap = tmp_path / "cache.pcapng"
    display = free_display()
    with peers.Tshark(srv.port, cap), peers.Xvfb(display, size="1600x1200x24"), \
            peers.Spicy(display, srv.port, min_channels=4,
                        extra_args=[f"--spice-cache-size={CACHE_BYTES}"]) as spicy:
        h, w = srv.framebuffer().shape[:2]
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
        time.sleep(1.0)
        display_channels = srv.call(lambda: [c for s in srv.server.sessions.values() for c in s.channels
                                             if c.name == "display"])
        assert [c.client_init["pixmap_cache_size"] for c in display_channels] == [CACHE_BYTES // 4]
        assert srv.start_replay().wait(120)
        srv.wait_idle()
        assert np.array_equal(srv.framebuffer(), expected)
        wait_for_picture(srv, display, tmp_path)      # spicy shows exactly that
        cache = display_channels[0].images.cache
        assert cache.size - cache.available <= CACHE_BYTES // 4
        time.sleep(0.5)
    stats = srv.server.stats
    assert stats["images_FROM_CACHE"] > 0 and stats["pixmaps_evicted"] > 0, dict(stats)

    seen: collections.Counter = collections.Counter()
    cached: set[int] = set()
    for o in served_display_messages(cap, srv.port):
        if o["type"] == "inval_list":
            ids = [r["id"] for r in o["fields"]["resources"]]
            assert set(ids) <= cached                  # only what the client was told to keep
            cached -= set(ids)
            seen["evicted"] += len(ids)
        elif o["type"] == "draw_copy":
            d = o["fields"]["data"]["src_bitmap"]["descriptor"]
            if d["type"] == "FROM_CACHE":
                assert d["id"] in cached               # never a miss on the client
                seen["from_cache"] += 1
            elif d["flags"] & 1:                       # CACHE_ME
                cached.add(d["id"])
    assert seen["from_cache"] == stats["images_FROM_CACHE"]
    assert seen["evicted"] == stats["pixmaps_evicted"]


def test_the_mirror_evicts_least_recently_used_within_size_and_count():
    """The draws of a real typing session through a small cache: never over its size or item
    count, evictions in least-recently-used order, hits on what it holds."""
    from spicetool.qxl.pixmap_cache import PixmapCache
    from spicetool.replay.timeline import Timeline
    path = ROOT / "captures" / "typing.pcapng"
    if not path.exists():
        pytest.skip("typing.pcapng is not in captures/")
    cache = PixmapCache(65536, max_items=6)
    order: list[int] = []     # least recently used first, kept independently of the cache
    hits = evictions = 0
    for frame in Timeline(str(path)).frames():
        for cmd in frame.commands:
            if getattr(cmd, "image_id", None) is None:
                continue
            i, size = cmd.image_id, cmd.pixels.shape[0] * cmd.pixels.shape[1]
            if cache.hit(i):
                hits += 1
                order.remove(i), order.append(i)
                continue
            evicted = cache.add(i, size)
            if evicted is None:
                assert size > cache.size and i not in cache
                continue
            assert evicted == order[:len(evicted)]
            del order[:len(evicted)]
            order.append(i)
            evictions += len(evicted)
            assert 0 <= cache.available and len(cache) <= 6
            assert len(order) == len(cache) and all(x in cache for x in order)
    assert hits > 0 and evictions > 0
