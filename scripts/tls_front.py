#!/usr/bin/env python3
"""A TLS front for a plain SPICE port: accept TLS on one port, relay the plaintext to another.

spice-gtk and spice-server (OpenSSL 3.0) write no key log; this front, on Python's ssl module,
writes the session secrets of every connection (SSLContext.keylog_filename, NSS key log format),
so a capture of a real client's TLS session can be decrypted.

    tls_front.py --listen 5935 --backend 5916 --cert server.pem --key server.key --keylog keys.log
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import threading


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy one direction until it ends, then pass the end on (half-close where the socket allows)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            if isinstance(dst, ssl.SSLSocket):
                dst.close()
            else:
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn: socket.socket, ctx: ssl.SSLContext, backend: tuple[str, int]) -> None:
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:  # e.g. a readiness probe that connects and leaves
        print(f"handshake failed: {e}", flush=True)
        conn.close()
        return
    try:
        plain = socket.create_connection(backend)
    except OSError as e:
        print(f"backend {backend}: {e}", flush=True)
        tls.close()
        return
    print(f"relay {tls.getpeername()} -> {backend} ({tls.version()}, {tls.cipher()[0]})", flush=True)
    back = threading.Thread(target=pump, args=(plain, tls), daemon=True)
    back.start()
    pump(tls, plain)
    back.join()
    plain.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--backend", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--keylog", required=True)
    ap.add_argument("--max-version", choices=("1.2", "1.3"), default="1.3")
    a = ap.parse_args(argv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.keylog_filename = a.keylog
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if a.max_version == "1.3" else ssl.TLSVersion.TLSv1_2
    with socket.create_server((a.host, a.listen), reuse_port=False) as srv:
        print(f"listening on {a.host}:{a.listen}, relaying to {a.host}:{a.backend}", flush=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn, ctx, (a.host, a.backend)), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
