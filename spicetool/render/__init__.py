"""Rebuilding the display channel into pictures and video."""
