"""The process layer, applied in each forked child before the hook runs (and never undone)."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass

from hookengine.config import BY_NAME

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
# World-writable places a run could leave files in for a later run (checked on each host).
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue",
               "/var/crash")
TMPFS_SIZE = "8m"
PRIVATE_WORKDIR = "/tmp/hook"
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
MAX_FD = 4096


def _default(name: str):
    return BY_NAME[name].default


@dataclass(frozen=True)
class Limits:
    """Per-execution limits; defaults and meanings live in config.SETTINGS (and the README)."""

    timeout_seconds: float = _default("TIMEOUT_SECONDS")  # wall clock, enforced by the zygote
    cpu_seconds: int = _default("CPU_SECONDS")            # RLIMIT_CPU: the kernel kills a loop
    memory_mb: int = _default("MEMORY_MB")                # RLIMIT_AS, on top of the runtime
    max_output_bytes: int = _default("MAX_OUTPUT_BYTES")  # printed bytes kept
    max_result_bytes: int = _default("MAX_RESULT_BYTES")  # JSON result size
    max_open_files: int = _default("MAX_OPEN_FILES")      # RLIMIT_NOFILE
    max_file_bytes: int = _default("MAX_FILE_BYTES")      # RLIMIT_FSIZE in the private dir

    def to_dict(self) -> dict:
        return asdict(self)


def _syscall_filter():
    """Deny-list seccomp filter, built once in the zygote; None when libseccomp is missing."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):  # the Python binding or libseccomp.so itself is absent
        return None
    deny = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in (
        # new programs and processes (threads too: hooks get none)
        "execve", "execveat", "fork", "vfork", "clone",
        # other processes' memory, and the kernel's own surfaces
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
        "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register",  # bypasses seccomp otherwise
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
        "personality", "reboot", "swapon", "swapoff", "acct", "settimeofday",
        "clock_settime", "sethostname", "setdomainname",
        # serving: a hook is a client, never a server
        "listen", "accept", "accept4",
    ):
        rules.add_rule(deny, name)
    # clone3 hides its flags behind a pointer; ENOSYS makes libc fall back to clone (denied).
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # Raw packets and netlink sockets: no use to a hook, and a common kernel attack surface.
    for family in (16, 17):  # AF_NETLINK, AF_PACKET
        rules.add_rule(deny, "socket", sc.Arg(0, sc.EQ, family))
    rules.add_rule(deny, "ioctl", sc.Arg(1, sc.EQ, 0x5412))  # TIOCSTI: type into a terminal
    return rules


class ProcessJail:
    """What the zygote knows about the host, and how it locks a fresh child down."""

    def __init__(self, uid_base: int, use_seccomp: bool, use_namespaces: bool = True):
        self.is_root = os.geteuid() == 0
        self.baseline = 0
        self.uid_base = uid_base
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.seccomp = _syscall_filter() if use_seccomp else None
        self.private_dirs = _private_dirs()
        self.namespaces = use_namespaces and self.is_root and self._probe_namespaces()
        self.unreadable = self._probe_readable() if self.is_root else []
        if self.unreadable:
            log.error("Hook processes (uid %d...) cannot read %s: SDK parts and CA bundles "
                      "they load on first use will fail. Let others read the installation "
                      "(chmod o+rx on it and o+x on every directory above it).",
                      uid_base, ", ".join(self.unreadable))

    def _probe_readable(self) -> list[str]:
        """Package directories a hook's uid cannot read. (The standard library may be
        unreadable: every module hooks may use is preloaded, and it only narrows them.)"""
        paths = [p for p in dict.fromkeys(sys.path) if p and os.path.isdir(p)
                 and os.path.basename(p) in ("site-packages", "dist-packages")]
        read_r, read_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the probe child
            try:
                os.setgid(self.uid_base)
                os.setuid(self.uid_base)
                bad = [p for p in paths if not os.access(p, os.R_OK | os.X_OK)]
                os.write(read_w, "\n".join(bad).encode())
            finally:
                os._exit(0)
        os.close(read_w)
        with os.fdopen(read_r, "rb") as answer:
            text = answer.read().decode()
        os.waitpid(pid, 0)
        return [line for line in text.splitlines() if line]

    def _probe_namespaces(self) -> bool:
        """Can this host give a child its own mounts? (Not in an unprivileged container.)"""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the probe child
            try:
                self._enter_namespaces()
            except OSError:
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def _enter_namespaces(self) -> None:
        """Own mount, IPC and UTS namespaces: private, empty /tmp, /var/tmp and /dev/shm (so
        nothing a hook writes there outlives it or reaches another run), and a /proc that
        shows a hook only its own process."""
        self._check(self.libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        # Mount changes below stay in this namespace, never propagate to the host.
        self._check(self.libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount /")
        for path in self.private_dirs:
            if os.path.isdir(path):
                self._check(self.libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                                            MS_NOSUID | MS_NODEV,
                                            f"size={TMPFS_SIZE},mode=1777".encode()), path)
        self._check(self.libc.mount(b"proc", b"/proc", b"proc",
                                    MS_NOSUID | MS_NODEV | MS_NOEXEC, b"hidepid=invisible"),
                    "/proc")

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")

    @property
    def host_workdir(self) -> bool:
        """Whether a child works in a directory the zygote makes (no private /tmp here)."""
        return not (self.namespaces
                    and os.path.dirname(PRIVATE_WORKDIR) in self.private_dirs)

    def layers(self) -> dict:
        """Which OS layers are active on this host (logged at start, shown by the API)."""
        return {
            "fresh_process_per_execution": True,
            "rlimits": True,
            "unprivileged_uid": self.is_root,
            "seccomp": self.seccomp is not None,
            "namespaces": self.namespaces,
            "private_tmp": list(self.private_dirs) if self.namespaces else [],
            "unreadable_by_hooks": self.unreadable,  # should be empty: see the log
        }

    def uid_for(self, slot: int) -> int | None:
        return self.uid_base + slot if self.is_root else None

    def prepare(self, workdir: str, uid: int | None, keep_fds: tuple[int, ...],
                parent: int) -> None:
        """In a spare child, before any job: new session, no descriptors, no environment,
        an unprivileged uid, no ptrace, seccomp. Nothing here depends on the job."""
        os.setsid()  # its own process group, so the zygote can kill everything it started
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Every inherited descriptor goes: the zygote's socket, other runs' pipes, the log.
        low = 3
        for fd in sorted(keep_fds) + [MAX_FD]:
            os.closerange(low, fd)
            low = fd + 1
        if self.namespaces:
            self._enter_namespaces()
            if not self.host_workdir:
                workdir = PRIVATE_WORKDIR  # inside the child's own /tmp, gone when it exits
                os.mkdir(workdir, 0o700)
                os.chown(workdir, uid, uid)
        os.chdir(workdir)
        os.environ.clear()  # SDKs read credentials and proxies from the environment
        os.environ.update(HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8", PATH="/usr/bin:/bin")
        tempfile.tempdir = workdir
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # other runs have other uids: no signals, no /proc across runs
        # Die with the zygote (set after setuid, which clears it), so no run outlives the
        # process that enforces its wall-clock limit.
        self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)  # the zygote died before the line above took effect
        self.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace, /proc/self stays root's
        self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if self.seccomp is not None:
            self.seccomp.load()

    def note_baseline(self) -> None:
        """Read the address space in use now, while no job waits; the memory limit adds to it."""
        self.baseline = _address_space_bytes()

    def limit(self, limits: Limits) -> None:
        """When the job arrives: hard resource limits, soft = hard.

        Only lowering is possible from here: the process has no capabilities (it is not root,
        or no longer root), so a hook can never raise a limit back up.
        """
        baseline = self.baseline or _address_space_bytes()
        for name, value in (
            ("RLIMIT_CORE", 0),                  # no core files with secrets in them
            ("RLIMIT_CPU", limits.cpu_seconds),
            ("RLIMIT_AS", baseline + limits.memory_mb * 1024 * 1024),
            ("RLIMIT_NOFILE", limits.max_open_files),
            ("RLIMIT_FSIZE", limits.max_file_bytes),
            ("RLIMIT_NPROC", 0),                 # no fork, no threads (enforced for non-root)
            ("RLIMIT_MEMLOCK", 0),
            ("RLIMIT_MSGQUEUE", 0),
        ):
            resource.setrlimit(getattr(resource, name), (value, value))


def _private_dirs() -> tuple[str, ...]:
    """The world-writable directories a child gets its own empty copy of: each of
    PRIVATE_TMP, unless the interpreter or its packages live below it (a checkout or a
    virtualenv in /tmp): hiding those would leave the child without its code."""
    needed = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p]
    found = []
    for path in dict.fromkeys(os.path.realpath(d) for d in PRIVATE_TMP):
        try:
            writable = os.stat(path).st_mode & 0o002
        except OSError:
            continue
        if writable and not any(p == path or p.startswith(path + "/") for p in needed):
            found.append(path)
    return tuple(found)


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
