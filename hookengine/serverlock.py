"""One data directory, one server: the lock `hookengine serve` holds on its data directory,
and the paths only the holder may use.

The lock is `flock` on `<data dir>/server.lock`, which holds the holder's pid. The kernel
drops it when the holder dies, however it dies, so a stale lock never needs clearing by hand.
(When the server was last alive is its node's heartbeat, in the store: nodes.py.)
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from hookengine.errors import DataDirInUse

log = logging.getLogger(__name__)

LOCK_NAME = "server.lock"
ZYGOTE_KINDS = ("full", "bare")


class ServerLock:
    """`acquire()` it before touching anything the previous server left; `release()` at exit."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "ServerLock":
        """Take the lock, or raise DataDirInUse naming the process that holds it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if error.errno != errno.EWOULDBLOCK:
                raise
            raise DataDirInUse(
                f"the data directory {self.data_dir} is in use by another hookengine server "
                f"(pid {holder}); stop that one first, or serve a different --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def socket_dir(self, kind: str) -> str:
        """The zygote socket directory of this data directory's server, for `kind`."""
        assert self._fd is not None, "only the lock holder may use the zygote directories"
        return socket_dir(self.data_dir, kind)

    def reset_socket_dirs(self) -> None:
        """Remove what a killed server left of its zygotes' directories; make them afresh.

        They live under the temporary directory, not in the data directory: a socket path is
        limited to 108 bytes (AF_UNIX), and a data directory may have a long path.
        """
        for kind in ZYGOTE_KINDS:
            path = self.socket_dir(kind)
            if os.path.lexists(path):
                # rmtree refuses a symlink: a directory planted by someone else is an error.
                shutil.rmtree(path)
                log.info("Removed %s, left by a server that did not stop cleanly", path)
            os.mkdir(path, 0o700)  # fails if it exists again: never a directory not ours

    def release(self) -> None:
        """Remove the zygote directories a clean stop leaves nothing in, and drop the lock
        (its file stays: deleting it would race with the next server)."""
        if self._fd is not None:
            for kind in ZYGOTE_KINDS:
                shutil.rmtree(self.socket_dir(kind), ignore_errors=True)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def socket_dir(data_dir: str | os.PathLike, kind: str) -> str:
    """`<tmp>/hookengine-<12 hex of the data directory's real path>-<kind>`."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(data_dir))).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"hookengine-{digest}-{kind}")
