"""`spicetool export`: a capture's SPICE connections as plain SPICE over TCP, optionally redacted."""
