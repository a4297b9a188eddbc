"""--tls-port and --secure-channels: spice-gtk clients over TLS (the plain port answers
NEED_SECURED for secure channels, the client goes to the TLS port), and stack-built clients."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys

import numpy as np
import pytest

from serve_helpers import RawClient, free_port, need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)
from spicetool.stack.types import CHANNEL_TYPES

MAIN, DISPLAY = CHANNEL_TYPES["main"], CHANNEL_TYPES["display"]


class TlsClient(RawClient):
    def __init__(self, port: int, ca_file, timeout: float = 5.0):
        ctx = ssl.create_default_context(cafile=str(ca_file))
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        super().__init__(port, timeout, sock=ctx.wrap_socket(raw, server_hostname="127.0.0.1"))


def screenshot_tls(port: int, tls_port: int, ca_file, out, tmp_path):
    """spicy-screenshot has no --spice-ca-file; with no CA file spice-gtk uses OpenSSL's default
    trust store, which SSL_CERT_FILE names (without it the check fails: self-signed)."""
    need("spicy-screenshot")
    env = dict(os.environ, SSL_CERT_FILE=str(ca_file))
    r = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(port), "-s", str(tls_port),
                        "-o", str(out)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and out.exists(), r.stdout + r.stderr
    return read_ppm(out)


def test_stack_client_over_tls_and_need_secured(spice_server):
    srv = spice_server(tls=True, secure_channels={MAIN})
    plain = RawClient(srv.port)
    assert plain.link(MAIN) == "NEED_SECURED"
    peers.wait_until(lambda: any(e == "NEED_SECURED" for _, e, _ in srv.server.refusals), 5, "refusal noted")
    c = TlsClient(srv.tls_port, srv.ca_file)
    assert c.link(MAIN) == "OK"
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    init = [m for m in c.messages(0.5) if m.name == "init"][0]
    # display is not secure: the plain port takes it for the same session
    d = RawClient(srv.port)
    assert d.link(DISPLAY, init.fields["session_id"]) == "OK"
    # a client that does not trust our certificate never gets a link
    other = ssl.create_default_context()
    with pytest.raises(ssl.SSLError):
        other.wrap_socket(socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5),
                          server_hostname="127.0.0.1")


def test_spicy_screenshot_goes_to_the_tls_port(spice_server, tmp_path):
    srv = spice_server(tls=True, secure_channels={MAIN, DISPLAY})
    shot = screenshot_tls(srv.port, srv.tls_port, srv.ca_file, tmp_path / "t.ppm", tmp_path)
    assert np.array_equal(shot, srv.framebuffer())
    refused = {e for _, e, _ in srv.server.refusals}
    assert refused == {"NEED_SECURED"}           # it tried the plain port first, as told
    assert any("main channel linked" in m and "TLS" in m for m in srv.messages)
    assert any("display channel linked" in m and "TLS" in m for m in srv.messages)


def test_serve_command_tls(tmp_path):
    """The real command: a self-signed certificate made at start, its path printed; all
    channels secure; spicy-screenshot through the TLS port; option errors."""
    need("spicy-screenshot")
    port, tls_port = free_port(), None
    for candidate in range(5949, 5939, -1):
        if candidate != port and peers.port_free(candidate):
            tls_port = candidate
            break
    p = subprocess.Popen([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--still",
                          "--size", "320x200", "-p", str(port), "--tls-port", str(tls_port),
                          "--secure-channels", "all"], stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = p.stderr.readline()
            assert line, "serve exited"
            if "self-signed certificate" in line:
                ca = line.rsplit(": ", 1)[1].strip()
        assert f"TLS on port {tls_port}" in line
        from pathlib import Path
        shot = screenshot_tls(port, tls_port, Path(ca), tmp_path / "c.ppm", tmp_path)
        assert shot.shape == (200, 320, 3)
        plain = RawClient(port)
        assert plain.link(CHANNEL_TYPES["inputs"], 1) == "NEED_SECURED"
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=10)
    for args, text in [(["--secure-channels", "main"], "go with --tls-port"),
                       (["--tls-port", "5949", "--secure-channels", "sound"], "not among"),
                       (["--tls-port", "5949", "--cert", __file__], "go together")]:
        r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and text in r.stderr, r.stderr
