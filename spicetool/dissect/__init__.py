"""Captures in, SPICE messages out: pcap/pcapng reading, TCP reassembly, sessions, analysis."""
