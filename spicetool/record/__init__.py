"""`spicetool record`: a recording proxy between a real SPICE client and server."""
