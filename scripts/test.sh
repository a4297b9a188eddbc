#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs
# the Rust core's tests and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers (Debian packages); root on the project's machines, sudo elsewhere.
PEERS="xserver-xspice spice-client-gtk gir1.2-spiceclientglib-2.0 virt-viewer tshark xvfb x11-apps x11-utils x11-xserver-utils xterm xdotool xclip imagemagick spice-vdagent ffmpeg chromium"
# the deployment sessions the suite records fresh (tests/support.py FRESH_DEPLOYMENT): proxy, WebSocket,
# browser client, TLS front, gstreamer encoders and decoders, QEMU booting Debian's kernel with busybox
PEERS="$PEERS tinyproxy websockify spice-html5 openssl wireshark-common python3-gi"
PEERS="$PEERS gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav"
PEERS="$PEERS qemu-system-x86 linux-image-amd64 busybox-static"
missing=""
for p in $PEERS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

python3 -m pip install -q -e ".[test,live,cluster]"
(cd rust && cargo test -q --workspace --exclude spicetool-native)
python3 -m pytest -q "$@"
