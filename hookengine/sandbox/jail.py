"""The kernel's file-system jail: what a hook process may read and write, enforced twice.

1. A read-only root (`JailTree`), built once in the zygote's own mount namespace, that holds
   only what a hook needs to read: the interpreter's standard library, the packages of its
   environment, the shared libraries the runtime has loaded, CA certificates, time-zone data,
   resolver files and a few device files. The zygote pivots into it, so each child starts
   there and only mounts its private, size-capped tmpfs at `/hook`. The host's tree (the data directory, the key file, the
   checkout, other runs' files, /proc, /sys) is not there at all. Needs root.
2. Landlock (`landlock_ruleset`): the same paths read-only and the working directory
   read-write, no TCP connect or bind at all (connections come from the broker, see
   broker.py), and no signals or abstract unix sockets outside the process. Needs no root;
   it is the whole file-system jail where mounts cannot be had.

Paths are judged once, in the zygote, as root: what hooks need to read is made readable by
bind mounts, so an installation in a 0700 home directory works without chmod.
"""

from __future__ import annotations

import ctypes
import os
import ssl
import struct
import sys
import sysconfig

# syscall numbers are the same on every architecture Linux gives Landlock to (asm-generic)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# access rights, and the ABI version that introduced each group
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 16, 32, 64, 128
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 256, 512, 1024, 2048, 4096
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15   # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2                               # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2                    # ABI 6
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
             5: (1 << 16) - 1}

READ_DIR = FS_READ_FILE | FS_READ_DIR
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
# The working directory: make, change and remove files and directories; no devices, fifos,
# sockets or links that could point out of it.
WORKDIR_RIGHTS = (FS_READ_FILE | FS_READ_DIR | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE
                  | FS_MAKE_DIR | FS_MAKE_REG | FS_TRUNCATE)

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 1 << 14, 1 << 18
MNT_DETACH = 2

# Inside the jail: the hook's private tmpfs, its home, its temp dir and its working dir.
WORKDIR = "/hook"

CA_DIRS = ("/etc/ssl", "/usr/lib/ssl", "/usr/share/ca-certificates", "/etc/ca-certificates",
           "/usr/local/share/ca-certificates", "/etc/pki")
TIMEZONE_DIRS = ("/usr/share/zoneinfo",)
READ_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
              "/etc/host.conf", "/etc/localtime", "/etc/ld.so.cache")
# Device files: (path, writable). No /dev/tty, no block or other character devices.
DEVICES = (("/dev/null", True), ("/dev/zero", False), ("/dev/urandom", False),
           ("/dev/random", False))

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it has none (or it is disabled)."""
    version = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0,
                            LANDLOCK_CREATE_RULESET_VERSION)
    return max(0, version)


def readable_paths(site: str | None = None) -> tuple[list[str], list[tuple[str, bool]]]:
    """What a hook needs to read, as (directories, [(file, writable)]), judged in the warmed
    zygote: the standard library, the engine's packages, the environment's package directory
    `site` (one of many under a shared parent: only this one, never the parent), the
    directories of every shared library loaded now, CA certificates, time zones, resolver
    files and device files."""
    dirs = [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"),
            sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    dirs += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    dirs += [site] if site else []
    dirs += _loaded_library_dirs()
    verify = ssl.get_default_verify_paths()
    dirs += [p for p in (verify.capath, verify.openssl_capath) if p]
    dirs += [os.path.dirname(p) for p in (verify.cafile, verify.openssl_cafile) if p]
    dirs += [*CA_DIRS, *TIMEZONE_DIRS]
    dirs = [os.path.abspath(d) for d in dirs if d and os.path.isdir(d)]
    files = [(f, False) for f in READ_FILES if os.path.exists(f)]
    files += [(f, writable) for f, writable in DEVICES if os.path.exists(f)]
    return _outermost(dirs), files


def _loaded_library_dirs() -> list[str]:
    """Directories of the shared objects mapped into this process (libc, libssl, libffi,
    extension modules): a module a hook imports later may load more from the same places."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
            if path.startswith("/") and ".so" in os.path.basename(path):
                found.append(os.path.dirname(path))
    return list(dict.fromkeys(found))


def _outermost(dirs: list[str]) -> list[str]:
    """Drop each directory that lies inside another one in the list."""
    kept: list[str] = []
    for path in sorted(set(dirs), key=lambda p: (p.count("/"), p)):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


class JailTree:
    """A read-only root for hook processes: built in the zygote's own mount namespace, which
    then makes it its root, so every child it forks starts inside it."""

    def __init__(self, dirs: list[str], files: list[tuple[str, bool]],
                 written: dict[str, bytes] | None = None):
        self.dirs, self.files = dirs, files
        self.written = written or {}  # files made for hooks (a CA bundle), not the host's

    def build(self, root: str) -> "JailTree":
        """Leave the host's mount namespace (this process only), bind every readable path
        read-only into a fresh tmpfs mounted at `root` (a new directory), at the same
        path, make that tmpfs read-only, and pivot into it for good.

        The zygote needs nothing of the host's tree afterwards: its modules are loaded, its
        socket is bound, and the broker (forked before) keeps the host's view."""
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        # Nothing mounted below reaches the host, and nothing the host mounts later reaches us.
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        os.mkdir(root, 0o755)
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        os.mkdir(root + WORKDIR, 0o755)
        for path in self.dirs:
            os.makedirs(root + path, 0o755, exist_ok=True)
            _bind(path, root + path, nodev=True)
        for path, _ in self.files:
            os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
            with open(root + path, "w"):
                pass
            _bind(path, root + path, nodev=not path.startswith("/dev/"))
        for path, data in self.written.items():
            os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
            with open(root + path, "wb") as file:
                file.write(data)
            os.chmod(root + path, 0o644)
        _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.chdir(root)
        # pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only
        # the tree (man 2 pivot_root, "NOTES").
        _check(_libc.syscall(155 if os.uname().machine == "x86_64" else 41, b".", b"."),
               "pivot_root")
        _check(_libc.umount2(b".", MNT_DETACH), "umount the host's tree")
        os.chdir("/")
        return self

    @staticmethod
    def enter(disk_bytes: int, uid: int | None) -> str:
        """In a child that has its own mount namespace: mount its private tmpfs on /hook.
        Returns the working directory."""
        owner = f",uid={uid},gid={uid}" if uid is not None else ""
        _mount("tmpfs", WORKDIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               f"size={disk_bytes},nr_inodes=1024,mode=0700{owner}")
        return WORKDIR


def _bind(source: str, target: str, nodev: bool) -> None:
    _mount(os.path.realpath(source), target, None, MS_BIND)
    # A bind mount takes its own flags only on a remount.
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | (MS_NODEV if nodev else 0)
    _mount(None, target, None, flags)


def _mount(source, target: str, fstype, flags: int, data: str | None = None) -> None:
    encode = lambda v: v.encode() if isinstance(v, str) else v  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)),
           f"mount {target}")


def landlock_ruleset(abi: int, dirs: list[str], files: list[tuple[str, bool]],
                     workdir: str) -> int:
    """A Landlock ruleset (its descriptor) for one hook process: the readable paths
    read-only, the working directory read-write, no TCP connect or bind, and (ABI 6) no
    signals or abstract unix sockets beyond its own domain. Built before privileges drop,
    so every path can be opened; applied with `landlock_restrict`."""
    handled_fs = FS_BY_ABI.get(abi, FS_BY_ABI[5])
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    ruleset = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0),
                     "landlock_create_ruleset")
    try:
        for path in dirs:
            _add_path_rule(ruleset, path, READ_DIR & handled_fs)
        for path, writable in files:
            rights = FS_READ_FILE | (FS_WRITE_FILE if writable else 0)
            _add_path_rule(ruleset, path, rights & handled_fs & FILE_RIGHTS)
        _add_path_rule(ruleset, workdir, WORKDIR_RIGHTS & handled_fs)
    except OSError:
        os.close(ruleset)
        raise
    return ruleset


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = struct.pack("=Qi", rights, fd)
        _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule,
                             0), f"landlock_add_rule {path}")
    finally:
        os.close(fd)


def landlock_restrict(ruleset: int) -> None:
    """Apply the ruleset to this process for good (needs no_new_privs), then close it."""
    try:
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
