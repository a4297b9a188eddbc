"""Rebuilding the display channel into pictures and video.

``frames(capture, fps=None)`` iterates (time, RGB numpy picture); ``picture_at(capture, at)``
gives one picture. Both stream the capture.
"""
from spicetool.render.frames import Frame, frames, picture_at
from spicetool.render.session import RenderStats, SessionScreen

__all__ = ["Frame", "frames", "picture_at", "RenderStats", "SessionScreen"]
