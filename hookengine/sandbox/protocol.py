"""Framing: server and zygote exchange length-prefixed frames; a child writes records.

A child's answer pipe carries records, each a kind byte, a 4-byte length and JSON: one log
line per `LINE` record as the hook prints it, then one `ANSWER`. The zygote forwards the
bytes to the server as they come (`DATA` frames, never holding a run's output) and ends with
one `END` frame saying how the child ended; the server reads the records.
"""

from __future__ import annotations

import os
import select
import socket
import struct

FRAME = struct.Struct("!I")
MAX_REQUEST_BYTES = 16 * 1024 * 1024
RECORD = struct.Struct("!cI")
LINE, ANSWER = b"L", b"A"      # record kinds, child -> server
DATA, END = b"D", b"E"         # frame kinds, zygote -> server
# A request frame that is a health check (GET /readyz), not a job; answered PONG.
PING = b'{"ping": true}'
PONG = END + b'{"pong": true}'  # what the zygote's _reply({"pong": True}) sends


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


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


def record(kind: bytes, payload: bytes) -> bytes:
    return RECORD.pack(kind, len(payload)) + payload


class RecordScanner:
    """Follows record boundaries in a child's stream without keeping its bytes, so the zygote
    knows when the answer is complete (and can reply before reaping the child)."""

    def __init__(self):
        self.header = b""
        self.kind = None
        self.remaining = 0

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            if self.remaining:
                step = min(self.remaining, len(view))
                self.remaining -= step
                view = view[step:]
                continue
            needed = RECORD.size - len(self.header)
            self.header += bytes(view[:needed])
            view = view[needed:]
            if len(self.header) == RECORD.size:
                self.kind, self.remaining = RECORD.unpack(self.header)
                self.header = b""

    @property
    def answered(self) -> bool:
        """The last record is a whole answer."""
        return self.kind == ANSWER and not self.remaining and not self.header


class RecordReader:
    """Splits a child's stream into (kind, payload) records as its bytes arrive."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        self.buffer += chunk
        records, start = [], 0
        while len(self.buffer) - start >= RECORD.size:
            kind, size = RECORD.unpack_from(self.buffer, start)
            end = start + RECORD.size + size
            if end > len(self.buffer):
                break
            records.append((kind, bytes(self.buffer[start + RECORD.size:end])))
            start = end
        del self.buffer[:start]
        return records

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished record are left (the child was cut off while writing)."""
        return bool(self.buffer)
