"""The server's mirror of one client's pixmap cache, kept as spice-server keeps it (dcc.cpp).

The client announces its cache size in DISPLAY_INIT, counted in pixels. An image the guest
marked cacheable (QXL_IMAGE_CACHE: here a DrawCopy with an image_id) goes out with CACHE_ME
when it fits; the next time the same id is drawn it goes out as FROM_CACHE (no pixels). To
make room the least recently used ids are evicted, and the client is told with INVAL_LIST
before the image that took their place. The client never evicts on its own.
"""
from __future__ import annotations

from collections import OrderedDict

RES_TYPE_PIXMAP = 1       # SpiceResourceType
MAX_ITEMS = 65536         # ids remembered at most, whatever size the client announced


class PixmapCache:
    def __init__(self, size: int, max_items: int = MAX_ITEMS):
        self.size = max(0, size)
        self.available = self.size
        self.max_items = max_items
        self._items: OrderedDict[int, int] = OrderedDict()   # id -> pixels, least recent first

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._items

    def hit(self, image_id: int) -> bool:
        """True when the client holds the image (and it becomes the most recently used)."""
        if image_id not in self._items:
            return False
        self._items.move_to_end(image_id)
        return True

    def add(self, image_id: int, pixels: int) -> list[int] | None:
        """Take an image in: the ids evicted to make room (the client must drop them first),
        or None when it cannot be cached at all (larger than the whole cache)."""
        if pixels <= 0 or pixels > self.size or image_id in self._items:
            return None
        evicted = []
        while self.available < pixels or len(self._items) >= self.max_items:
            old, old_size = self._items.popitem(last=False)
            self.available += old_size
            evicted.append(old)
        self._items[image_id] = pixels
        self.available -= pixels
        return evicted


def inval_lists(ids: list[int]) -> list[tuple[str, dict]]:
    """INVAL_LIST messages for evicted pixmaps (a u16 count each)."""
    out = []
    for i in range(0, len(ids), 0xFFFF):
        part = ids[i:i + 0xFFFF]
        out.append(("inval_list", {"resources": [{"type": RES_TYPE_PIXMAP, "id": x} for x in part]}))
    return out
