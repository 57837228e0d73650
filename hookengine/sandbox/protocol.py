"""Framing between the server and the zygote: a 4-byte length, then JSON."""

from __future__ import annotations

import os
import select
import socket
import struct

FRAME = struct.Struct("!I")
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# A request frame that is a health check (GET /readyz), not a job; answered PONG.
PING = b'{"ping": true}'
PONG = b'{"pong": true}'  # what the zygote's json.dumps({"pong": True}) sends


def read_frame(sock: socket.socket, limit: int = MAX_REQUEST_BYTES) -> bytes | None:
    header = _read_exact(sock, FRAME.size)
    if header is None:
        return None
    (size,) = FRAME.unpack(header)
    if size > limit:
        raise ValueError(f"frame of {size} bytes is over the limit")
    return _read_exact(sock, size)


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload)) + payload


def write_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(frame(payload))


def splice_frame(sock: socket.socket, fd: int, limit: int = MAX_REQUEST_BYTES,
                 timeout: float = 10) -> None:
    """Move the next frame's payload from `sock` to the pipe `fd` without reading it into
    this process's memory (os.splice: the bytes stay in the kernel)."""
    header = _read_exact(sock, FRAME.size)
    if header is None:
        raise ConnectionError("the connection closed before the frame")
    (remaining,) = FRAME.unpack(header)
    if remaining > limit:
        raise ValueError(f"frame of {remaining} bytes is over the limit")
    poller = select.poll()  # not select.select: the zygote may hold over 1024 descriptors
    poller.register(sock, select.POLLIN)
    while remaining:
        if not poller.poll(timeout * 1000):
            raise TimeoutError("the frame did not arrive in time")
        try:
            moved = os.splice(sock.fileno(), fd, remaining)
        except BlockingIOError:
            continue
        if not moved:
            raise ConnectionError("the connection closed inside the frame")
        remaining -= moved


def _read_exact(sock, size):
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
