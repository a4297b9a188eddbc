"""The SPICE protocol, sans-I/O: bytes in, typed events out; typed messages in, bytes out."""
