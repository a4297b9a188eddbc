#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs
# the Rust core's tests and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers (Debian packages); root on the project's machines, sudo elsewhere.
PEERS="xserver-xspice spice-client-gtk gir1.2-spiceclientglib-2.0 virt-viewer tshark xvfb x11-apps x11-utils x11-xserver-utils xterm xdotool imagemagick spice-vdagent ffmpeg chromium"
missing=""
for p in $PEERS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

python3 -m pip install -q -e ".[test,live]"
(cd rust && cargo test -q --workspace --exclude spicetool-native)
python3 -m pytest -q "$@"
