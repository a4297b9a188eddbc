"""The SPICE server of `spicetool serve`: a server of our own that real clients connect to.

link.py (link stage, tickets) -> server.py (sessions) -> channel.py (pipe, ACK window, pings) and
main/display/cursor/inputs_channel.py; agent.py (the vdagent model), inputlog.py, keys.py,
passwords.py, tls.py. The display it shows comes from the QXL device model (spicetool.qxl).
"""
