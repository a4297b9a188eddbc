"""A display channel whose first pictures come before the client's display INIT. spice-server waits for INIT
before it sends anything on a display channel; a server that does not (ours did, when a replaying client sent
its INIT at the captured moment and the server had its first screen ready) sends GLZ and CACHE_ME images the
client keeps in the caches it already had, and INIT then names those caches: a later GLZ image refers to the
first screen, a FROM_CACHE to an image cached before INIT. Made here from agent-audio.pcapng by moving the
client's INIT segment to just after the server's first draw (every byte unchanged)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spicetool.capture import PcapWriter, open_capture, open_records
from spicetool.render import RenderStats, picture_at

from support import CAPTURES

SOURCE = CAPTURES / "agent-audio.pcapng"


def _late_init(src: Path, dst: Path, after: int) -> None:
    """`src` with the client's display INIT moved after the server's `after`-th draw."""
    recs = list(open_records(str(src)))
    init = next(r for r in recs if r.channel.channel == "display" and r.layer == "message"
                and r.direction.value == "client" and r.type == "init")
    draws = [r for r in recs if r.channel.channel == "display" and r.layer == "message"
             and r.direction.value == "server" and r.type.startswith("draw_") and r.frame > init.frame]
    draw = draws[after - 1]
    segs = list(open_capture(str(src)))
    conn = (init.channel.client, init.channel.server)
    # the client's segments on the display connection from its INIT to the draw move together (in order:
    # TCP reassembly sees them late, not reordered)
    held = [i for i in range(init.frame, draw.frame + 1) if (segs[i - 1].src, segs[i - 1].dst) == conn]
    assert segs[init.frame - 1].time == init.time and segs[init.frame - 1].payload
    with open(dst, "wb") as out:
        w = PcapWriter(out)
        for i, s in enumerate(segs, start=1):
            if i in held:
                continue
            w.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
            if i == draw.frame:   # the INIT arrives after the server's pictures up to this one
                for k, j in enumerate(held, start=1):
                    m = segs[j - 1]
                    w.segment(s.time + k * 1e-6, m.src, m.dst, m.seq, m.ack, m.flags, m.payload)


@pytest.mark.parametrize("after", [1, 10, 40])
def test_images_before_the_display_init_stay_in_the_caches_it_names(tmp_path: Path, after: int) -> None:
    late = tmp_path / "late-init.pcap"
    _late_init(SOURCE, late, after)
    recs = [r for r in open_records(str(late)) if r.channel.channel == "display" and r.layer == "message"]
    first_draw = next(i for i, r in enumerate(recs) if r.type.startswith("draw_"))
    init = next(i for i, r in enumerate(recs) if r.type == "init" and r.direction.value == "client")
    assert first_draw < init   # the capture made is what it should be
    expected = picture_at(str(SOURCE)).image
    stats = RenderStats()
    got = picture_at(str(late), stats=stats).image
    assert not stats.warnings, stats.warnings   # (the old render: "refers to dictionary image 0, not in the window")
    assert np.array_equal(got, expected), f"{int((got != expected).any(axis=2).sum())} pixels differ"
