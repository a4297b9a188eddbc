"""The image caches a client shares between the display channels of one session.

In display INIT each display channel of a client names a pixmap cache and a GLZ dictionary
by id, with their sizes in pixels. spice-server keeps one of each per (client, id): the
first INIT that names an id creates it with its sizes, later ones join it. spice-gtk keeps
one per session. So with several display channels (a guest with one QXL device per monitor)
a GLZ image on one channel may refer to a dictionary image sent on another, and a
FROM_CACHE to a picture cached there. We decode in capture order across the channels.
The channels are sockets of their own, so a GLZ image may arrive before the dictionary image
it refers to: spice-gtk's window then waits for that image, we do not (the image is drawn as
a placeholder, "not in the window"; not seen in the real two-QXL sessions so far).
"""
from __future__ import annotations

from typing import Any

from spicetool import codecs as dec
from spicetool.render.images import MAX_CACHE_BYTES, PixmapCache

MAX_GLZ_BYTES = 256 << 20  # our bound whatever a client announced
# the server's own accounting of its window may run a little over what it announced: keep
# twice the announced pixels before the memory bound evicts anything
_MARGIN = 2


class SessionCaches:
    """Pixmap caches and GLZ dictionaries of one session, by the ids of display INIT."""

    def __init__(self, sharing: bool = True) -> None:
        self.sharing = sharing  # False: every channel keeps its own (to show what sharing does)
        self.pixmaps: dict[int, PixmapCache] = {}
        self.glz: dict[int, dec.GlzDictionary] = {}

    def for_init(self, fields: dict[str, Any], before: tuple[PixmapCache, dec.GlzDictionary] | None = None
                 ) -> tuple[PixmapCache, dec.GlzDictionary]:
        """The caches one display channel's INIT names (made with its sizes if new; or, when the
        channel's images already went into caches of its own before the INIT, `before`, those)."""
        cache_id, dict_id = int(fields["pixmap_cache_id"]), int(fields["glz_dictionary_id"])
        cache_px, window_px = int(fields["pixmap_cache_size"]), int(fields["glz_dictionary_window_size"])
        pixmaps = self.pixmaps.get(cache_id) if self.sharing else None
        if pixmaps is None:
            pixmaps = before[0] if before else PixmapCache(_bytes(cache_px, MAX_CACHE_BYTES))
            if self.sharing:
                self.pixmaps[cache_id] = pixmaps
        glz = self.glz.get(dict_id) if self.sharing else None
        if glz is None:
            glz = before[1] if before else dec.GlzDictionary(_bytes(window_px, MAX_GLZ_BYTES))
            if self.sharing:
                self.glz[dict_id] = glz
        return pixmaps, glz


def _bytes(pixels: int, bound: int) -> int:
    """Bytes to hold ``pixels`` 4-byte pixels (with the margin), within ``bound``; a size of 0 or
    less (spice-html5 announces 0: it has no GLZ) leaves our bound alone."""
    if pixels <= 0:
        return bound
    return min(bound, pixels * 4 * _MARGIN)
