"""Files and interfaces to SPICE connections: pcap/pcapng reading and writing, live capture, TCP reassembly, TLS and key logs, sessions."""
