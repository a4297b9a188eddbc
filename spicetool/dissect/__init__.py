"""`spicetool dissect`: the command and its output (the capture library is spicetool.capture)."""
