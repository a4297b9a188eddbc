"""A SPICE server of our own that replays captured sessions."""
