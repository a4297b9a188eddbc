"""Lost segments (issue 12): a gap inside a message keeps the framing; its draw's lost pixels are
unknown, every pixel reported known equals the truth."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from spicetool.capture import open_records
from spicetool.render.frames import picture_at
from spicetool.render.session import RenderStats, SessionScreen
from tests.support import deployment_capture


def _draws(path):
    return [r for r in open_records(str(path)) if r.layer == "message" and r.channel.channel == "display"
            and r.direction.value == "server"]


def _render(path):
    stats, screen = RenderStats(), SessionScreen()
    frame = picture_at(str(path), None, stats=stats, screen=screen)
    return frame.image, screen.unknown(), stats


def test_framing_kept_and_known_pixels_exact():
    cut = deployment_capture("lost-segments.pcapng")
    meta = json.loads(deployment_capture("lost-segments.json").read_text())
    truth = np.asarray(Image.open(deployment_capture("lost-segments.png")).convert("RGB"))
    gaps = [r for r in open_records(str(cut)) if r.layer == "gap"]
    assert len(gaps) == len(meta["capture"]["lost_segments"]["dropped_frames"])
    assert all(g.fields["framing"] == "kept" for g in gaps)
    intact, damaged = _draws(deployment_capture("lost-segments.intact.pcapng")), _draws(cut)
    # framing kept: the same messages, only the damaged ones differ
    assert [(r.type, r.size) for r in intact] == [(r.type, r.size) for r in damaged]
    hurt = [i for i, r in enumerate(damaged) if r.event.lost]
    assert hurt and all(intact[i].event.body == damaged[i].event.body for i in range(len(intact)) if i not in hurt)
    lost_bytes = sum(b - a for i in hurt for a, b in damaged[i].event.lost)
    assert lost_bytes == sum(meta["capture"]["lost_segments"]["dropped_frame_bytes"])
    img, unknown, stats = _render(cut)
    assert unknown is not None and (img[~unknown] == truth[~unknown]).all()
    # no more unknown than the area of the draws that lost bytes (their boxes, on the surface)
    area = np.zeros(truth.shape[:2], bool)
    for i in hurt:
        box = damaged[i].fields["base"]["box"]
        area[max(box["top"], 0):box["bottom"], max(box["left"], 0):box["right"]] = True
    assert 0 < stats.unknown_share <= area.mean()
    assert not (unknown & ~area).any()


def test_intact_capture_has_nothing_unknown():
    img, unknown, stats = _render(deployment_capture("lost-segments.intact.pcapng"))
    assert unknown is None and stats.unknown_share == 0.0
