"""Video codecs other than MJPEG and Opus sound: the corpus server (Xspice without GStreamer) sends
neither, so these re-encode the corpus' own MJPEG frames and PCM tone with FFmpeg (through PyAV)
and check the render side decodes and places them as the client would.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from spicetool.render.audio import PlaybackAudio
from spicetool.render.frames import records_of
from spicetool.render.streams import Streams
from spicetool.render.surfaces import Surface

from .corpus import capture_path, psnr, sessions


def _need(name: str) -> str:
    if name not in sessions():
        pytest.skip(f"{name} not in the corpus")
    return str(capture_path(name))


def _mjpeg_stream():
    create, datas = None, []
    for rec in records_of(_need("mjpeg-stream")):
        if rec.type == "stream_create":
            create = rec.fields
        elif rec.type == "stream_data" and len(datas) < 12:
            datas.append(rec.fields)
    assert create is not None and datas
    return create, datas


@pytest.mark.parametrize("codec, encoder", [("VP8", "libvpx"), ("H264", "libx264"), ("VP9", "libvpx-vp9")])
def test_stream_codecs_through_pyav(codec: str, encoder: str) -> None:
    import av
    create, datas = _mjpeg_stream()
    mjpeg = Streams()
    mjpeg.create(create)
    pictures = [mjpeg.streams[create["id"]].decode(bytes(d["data"])) for d in datas]
    h, w = pictures[0].shape[:2]
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.bit_rate = 4_000_000
    enc.time_base = Fraction(1, 25)
    enc.options = {"deadline": "realtime"} if "vpx" in encoder else {"tune": "zerolatency", "preset": "ultrafast"}
    packets = []
    for i, pic in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pic[..., 2::-1]), format="rgb24")
        frame.pts = i
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    assert len(packets) == len(pictures)

    streams = Streams()
    streams.create({**create, "codec_type": codec})
    surface = Surface(0, 1024, 768, "32_xRGB", True)
    top, left = create["dest"]["top"], create["dest"]["left"]
    for pkt, pic in zip(packets, pictures):
        reg = streams.data({"base": {"id": create["id"]}, "data": pkt}, {0: surface}, sized=False)
        if reg is None:
            continue  # the decoder may hold frames back
        shown = surface.pixels[top:top + h, left:left + w, :3]
    assert streams.frames >= len(pictures) - 2
    assert psnr(shown, pictures[streams.frames - 1][..., :3]) > 30
    assert (surface.pixels[:top, :, :3] == 0).all()  # only the destination is touched


def test_opus_playback_decodes_to_the_tone() -> None:
    import av
    pcm_audio = PlaybackAudio()
    for rec in records_of(_need("agent-audio")):
        if rec.channel.channel == "playback" and rec.direction.name == "SERVER":
            pcm_audio(rec.time, rec.type, rec.fields)
    pcm = np.concatenate([c for _, c in pcm_audio.take()])[: 48000 * 2]
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    enc.time_base = Fraction(1, 48000)
    packets = []
    for i in range(0, len(pcm) - 960, 960):  # 20 ms frames, as spice-server sends
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[i:i + 960].reshape(1, -1)), format="s16",
                                           layout="stereo")
        frame.sample_rate, frame.pts = 48000, i
        packets.extend(bytes(p) for p in enc.encode(frame))
    opus = PlaybackAudio()
    opus(0.0, "start", {"channels": 2, "format": "S16", "frequency": 48000})
    opus(0.0, "mode", {"mode": "OPUS"})
    for k, pkt in enumerate(packets):
        opus(k * 0.02, "data", {"data": pkt})
    out = np.concatenate([c for _, c in opus.take()])
    assert not opus.warnings and out.shape[1] == 2 and len(out) > 48000
    spectrum = np.abs(np.fft.rfft(out[:48000, 0].astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 2  # 1 Hz bins over one second


def test_sized_stream_frames_are_scaled_to_their_destination() -> None:
    """STREAM_DATA_SIZED with a destination twice the frame: the real MJPEG frame is stretched over it."""
    create, datas = _mjpeg_stream()
    streams = Streams()
    streams.create(create)
    frame = streams.streams[create["id"]].decode(bytes(datas[0]["data"]))
    h, w = frame.shape[:2]
    surface = Surface(0, 1024, 768, "32_xRGB", True)
    dest = {"top": 10, "left": 20, "bottom": 10 + 2 * h, "right": 20 + 2 * w}
    reg = streams.data({"base": {"id": create["id"]}, "data": datas[0]["data"], "dest": dest, "width": w,
                        "height": h}, {0: surface}, sized=True)
    assert reg is not None and (reg.y0, reg.x0, reg.y1, reg.x1) == (10, 20, 10 + 2 * h, 20 + 2 * w)
    shown = surface.pixels[10:10 + 2 * h:2, 20:20 + 2 * w:2, :3]
    assert psnr(shown, frame[..., :3]) > 25
    huge = {"top": 0, "left": 0, "bottom": 1 << 30, "right": 1 << 30}  # damaged: costs only the surface
    assert streams.data({"base": {"id": create["id"]}, "data": datas[1]["data"], "dest": huge, "width": w,
                         "height": h}, {0: surface}, sized=True) is not None
