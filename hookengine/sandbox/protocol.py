"""Framing between the server and the zygote: a 4-byte length, then JSON."""

from __future__ import annotations

import socket
import struct

FRAME = struct.Struct("!I")
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def read_frame(sock: socket.socket, limit: int = MAX_REQUEST_BYTES) -> bytes | None:
    header = _read_exact(sock, FRAME.size)
    if header is None:
        return None
    (size,) = FRAME.unpack(header)
    if size > limit:
        raise ValueError(f"frame of {size} bytes is over the limit")
    return _read_exact(sock, size)


def write_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(FRAME.pack(len(payload)) + payload)


def _read_exact(sock, size):
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
