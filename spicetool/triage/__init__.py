"""Triage of a recorded session: `spicetool stats` (figures) and `spicetool report` (one HTML page)."""
