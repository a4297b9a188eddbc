"""Replays: a capture fed to our server as its guest, and a captured client replayed to a server.

serve side: timeline.py (a capture as a timeline of QXL commands), capture_replay.py (paces that
timeline into the device), runner.py (device + what drives it + server) and serve_command.py
(`spicetool serve`). Client side: client_plan.py (what a captured client sent), client_channel.py
and client_session.py (our client replaying it), client_command.py (`spicetool replay`).
"""
