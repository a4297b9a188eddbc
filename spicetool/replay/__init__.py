"""`spicetool serve`: a SPICE server of our own that real clients (remote-viewer, spicy) connect to.

link.py (link stage, tickets) -> server.py (sessions) -> channel.py (pipe, ACK window, pings) and
main/display/cursor/inputs_channel.py; qxl.py (the device model), worker.py (device commands ->
display/cursor messages), images.py (BITMAP or our encoders); demo.py (the built-in desktop),
replay.py (a capture's display and cursor); command.py and runner.py (the CLI).
"""
