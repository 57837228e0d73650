"""The process layer, applied in each forked child before the hook runs (and never undone)."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
import signal
import ssl
import sys
import tempfile
from dataclasses import asdict, dataclass

from hookengine.sandbox import jail
from hookengine.sandbox.broker import Broker

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
# World-writable places a run could leave files in for a later run (checked on each host).
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue",
               "/var/crash")
CA_FILE = "/etc/hookengine/ca-bundle.pem"  # inside the jail's root
DISK_BYTES = 8 * 1024 * 1024  # the private directory's tmpfs (see HOOKENGINE_DISK_BYTES)
PRIVATE_WORKDIR = "/tmp/hook"
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
MAX_FD = 4096
MSG_FASTOPEN = 0x20000000
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class Limits:
    """Per-execution limits, all required: the sandbox reads no settings. Their defaults and
    meanings live in config.SETTINGS (and the README); runner.limits_from maps settings here."""

    timeout_seconds: float  # wall clock, enforced by the zygote
    cpu_seconds: int        # RLIMIT_CPU: the kernel kills a loop
    memory_mb: int          # RLIMIT_AS, on top of the runtime
    max_output_bytes: int   # printed bytes kept
    max_result_bytes: int   # JSON result size
    max_open_files: int     # RLIMIT_NOFILE
    max_file_bytes: int     # RLIMIT_FSIZE in the private dir

    def to_dict(self) -> dict:
        return asdict(self)


def _syscall_filter(brokered: bool):
    """Deny-list seccomp filter, built once in the zygote; None when libseccomp is missing.

    `brokered`: hook processes get their connections from the broker, so they create no
    socket but TCP ones (which the network jail leaves nowhere to go) and send no datagrams.
    """
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
    if brokered:
        # Every family but AF_INET (2) and AF_INET6 (10): unix sockets would reach the
        # host's daemons by path (Landlock does not judge connect on them).
        for family in (0, 1, 3, 4, 5, 6, 7, 8, 9):
            rules.add_rule(deny, "socket", sc.Arg(0, sc.EQ, family))
        rules.add_rule(deny, "socket", sc.Arg(0, sc.GE, 11))
        rules.add_rule(deny, "socketpair")
        # Datagram and raw sockets (DNS, ICMP, UDP exfiltration): Landlock judges TCP only.
        for family in (2, 10):
            for kind in (2, 3):  # SOCK_DGRAM, SOCK_RAW (the type's low bits; flags above)
                rules.add_rule(deny, "socket", sc.Arg(0, sc.EQ, family),
                               sc.Arg(1, sc.MASKED_EQ, 0xF, kind))
        # TCP Fast Open connects from inside sendto/sendmsg.
        rules.add_rule(deny, "sendto", sc.Arg(3, sc.MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN))
        rules.add_rule(deny, "sendmsg", sc.Arg(2, sc.MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN))
    return rules


class ProcessJail:
    """What the zygote knows about the host, and how it locks a fresh child down.

    Layers, each standing on its own: an unprivileged uid, rlimits, seccomp, namespaces, and
    the kernel jail (jail.py: a read-only root and Landlock; broker.py: no network but the
    connections the broker makes after checking the egress policy).
    """

    def __init__(self, uid_base: int, use_seccomp: bool, use_namespaces: bool = True,
                 use_jail: bool = True, disk_bytes: int = DISK_BYTES, ca_bundle: str = "",
                 site: str | None = None):
        self.is_root = os.geteuid() == 0
        self.baseline = 0
        self.statm = self.proc = -1
        self.runs_dir: str | None = None  # children's working dirs, without the tree
        self.uid_base = uid_base
        self.use_jail = use_jail
        self.disk_bytes = disk_bytes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.seccomp = _syscall_filter(use_jail) if use_seccomp else None
        self.landlock = jail.landlock_abi() if use_jail else 0
        self.site = site  # an environment's packages: readable, and no other environment
        self.readable = jail.readable_paths(site) if use_jail else ([], [])
        self.tree: jail.JailTree | None = None
        # The CA bundle hooks trust: certifi's plus the operator's own CAs, read now (as
        # root) and written where the hook can read it.
        self.ca_pem = _ca_bundle(ca_bundle) if ca_bundle else None
        self.ca_file = None
        self.broker: Broker | None = None
        self.netns = False
        self.problems: list[str] = []
        self.private_dirs = _private_dirs()
        self.namespaces = use_namespaces and self.is_root and self._probe(self._enter_namespaces)
        self.unreadable = []

    def start(self, broker_uid: int | None, scratch: str) -> "ProcessJail":
        """Once, in the zygote, before any child: fork the broker, leave the host's network
        namespace, build the read-only tree in `scratch` (an empty directory the caller
        removes) and move into it, and check that a child can be locked down; a layer that
        cannot be had here is reported, never silently skipped."""
        # The children's own memory figures are read through this: /proc is not in the tree.
        self.proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
        if self.use_jail:
            self.broker = Broker.start(broker_uid)
            if not self.landlock:
                self.problems.append("the kernel offers no Landlock")
        if self.use_jail and self.namespaces:
            self.netns = self.libc.unshare(CLONE_NEWNET) == 0
            if not self.netns:
                self.problems.append("no empty network namespace: "
                                     + os.strerror(ctypes.get_errno()))
            written = {CA_FILE: self.ca_pem} if self.ca_pem else {}
            tree = jail.JailTree(*self.readable, written)
            try:
                self.tree = tree.build(os.path.join(scratch, "jail-root"))
                self.ca_file = CA_FILE if self.ca_pem else None
            except OSError as error:  # before the pivot: the host's tree is still ours
                self.problems.append(f"no read-only root: {error}")
        if self.tree is None:
            self.runs_dir = tempfile.mkdtemp(prefix="hookengine-runs-")
            os.chmod(self.runs_dir, 0o711)  # each run's uid may enter its own 0700 dir only
            if self.ca_pem:
                self.ca_file = _write_readable(self.ca_pem, self.runs_dir)
        if self.ca_file:
            self.readable[1].append((self.ca_file, False))
        if self.is_root and self.tree is None:
            self.unreadable = self._probe_readable()
        if self.use_jail and not self._probe(self._rehearse):
            raise RuntimeError("hook processes cannot be locked down on this host: see "
                               "the log, or set HOOKENGINE_JAIL=false")
        if self.unreadable:
            log.error("Hook processes (uid %d...) cannot read %s: SDK parts and CA bundles "
                      "they load on first use will fail. Run as root with namespaces on "
                      "(the jail then makes them readable), or let others read the "
                      "installation (chmod o+rx on it and o+x on every directory above it).",
                      self.uid_base, ", ".join(self.unreadable))
        for problem in self.problems:
            log.warning("Sandbox: %s", problem)
        return self

    def workdir_for(self, name: str) -> str:
        """Where a child works: its tmpfs in the tree, or a directory of its own in runs_dir
        (made by the zygote when it forks the child)."""
        return jail.WORKDIR if self.runs_dir is None else os.path.join(self.runs_dir, name)

    def _rehearse(self) -> None:
        """In a probe child: the whole lockdown a spare goes through, then a look at what a
        hook needs (a CA bundle) and what it must not see (/etc/passwd)."""
        uid = self.uid_for(0)
        workdir = self.workdir_for("probe")
        if self.runs_dir is not None:
            os.mkdir(workdir, 0o700)
            if uid is not None:
                os.chown(workdir, uid, uid)
        self.prepare(workdir, uid, (), os.getppid())
        for cafile in (ssl.get_default_verify_paths().cafile, _certifi_bundle()):
            if cafile and os.path.exists(cafile):  # (exists() is a stat: Landlock allows it)
                with open(cafile, "rb"):
                    pass
        try:
            open("/etc/passwd", "rb").close()
        except OSError:
            return
        raise OSError("/etc/passwd is readable inside the jail")

    def _probe_readable(self) -> list[str]:
        """Package directories a hook's uid cannot read. (The standard library may be
        unreadable: every module hooks may use is preloaded, and it only narrows them.)"""
        paths = [p for p in dict.fromkeys(sys.path) if p and os.path.isdir(p)
                 and (os.path.basename(p) in ("site-packages", "dist-packages")
                      or p == self.site)]
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

    def _probe(self, attempt) -> bool:
        """Does `attempt` succeed in a forked child? (Namespaces are not to be had in an
        unprivileged container, pivot_root not on some file systems.)"""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the probe child
            try:
                attempt()
            except OSError:
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def _enter_namespaces(self) -> None:
        """Own mount, IPC and UTS namespaces. Without the jail's tree: private, empty /tmp,
        /var/tmp and /dev/shm (so nothing a hook writes there outlives it or reaches another
        run), and a /proc that shows a hook only its own process."""
        self._check(self.libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        self._check(self.libc.sethostname(b"hook", 4), "sethostname")  # not the host's name
        # Mount changes below stay in this namespace, never propagate to the host.
        self._check(self.libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount /")
        if self.tree is not None:
            return  # the child pivots into the tree: the host's /tmp and /proc are gone
        for path in self.private_dirs:
            if os.path.isdir(path):
                self._check(self.libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                                            MS_NOSUID | MS_NODEV,
                                            f"size={self.disk_bytes},mode=1777".encode()), path)
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
        if self.tree is not None:
            return False
        return not (self.namespaces
                    and os.path.dirname(PRIVATE_WORKDIR) in self.private_dirs)

    def layers(self) -> dict:
        """Which OS layers are active on this host (logged at start, shown by the API)."""
        filesystem = [name for name, on in (("read_only_root", self.tree is not None),
                                            (f"landlock_abi_{self.landlock}", self.landlock))
                      if on]
        network = [name for name, on in (("empty_netns", self.netns),
                                          ("landlock_tcp", self.landlock >= 4),
                                          ("broker", self.broker is not None)) if on]
        return {
            "fresh_process_per_execution": True,
            "rlimits": True,
            "unprivileged_uid": self.is_root,
            "seccomp": self.seccomp is not None,
            "namespaces": self.namespaces,
            "filesystem_jail": filesystem,
            "network_jail": network if self.broker is not None else [],
            "private_tmp": ([jail.WORKDIR] if self.tree is not None else
                            list(self.private_dirs) if self.namespaces else []),
            "unreadable_by_hooks": self.unreadable,  # should be empty: see the log
            "jail_problems": self.problems,
        }

    def uid_for(self, slot: int) -> int | None:
        return self.uid_base + slot if self.is_root else None

    def prepare(self, workdir: str, uid: int | None, keep_fds: tuple[int, ...],
                parent: int) -> None:
        """In a spare child, before any job: new session, no descriptors, no environment,
        the jail, an unprivileged uid, no ptrace, seccomp. Nothing here depends on the job."""
        os.setsid()  # its own process group, so the zygote can kill everything it started
        # Its own memory figures, read later through this descriptor: /proc is not in the jail.
        self.statm = os.open("self/statm", os.O_RDONLY, dir_fd=self.proc)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Every inherited descriptor goes: the zygote's socket, other runs' pipes, the log.
        low = 3
        for fd in sorted((*keep_fds, self.statm)) + [MAX_FD]:
            os.closerange(low, fd)
            low = fd + 1
        if self.namespaces:
            self._enter_namespaces()
            if self.tree is not None:
                workdir = jail.JailTree.enter(self.disk_bytes, uid)
            elif not self.host_workdir:
                workdir = PRIVATE_WORKDIR  # inside the child's own /tmp, gone when it exits
                os.mkdir(workdir, 0o700)
                os.chown(workdir, uid, uid)
        os.chdir(workdir)
        os.environ.clear()  # SDKs read credentials and proxies from the environment
        os.environ.update(HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8", PATH="/usr/bin:/bin")
        if self.ca_file:  # requests reads the first, the ssl module the second
            os.environ.update(REQUESTS_CA_BUNDLE=self.ca_file, SSL_CERT_FILE=self.ca_file)
        tempfile.tempdir = workdir
        # Built here, per child: a rule names the working directory's own tmpfs, and Landlock
        # does not carry a rule on a mount point over to what is mounted on it.
        ruleset = (jail.landlock_ruleset(self.landlock, *self.readable, workdir)
                   if self.landlock else None)
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
        if ruleset is not None:
            jail.landlock_restrict(ruleset)
        if self.seccomp is not None:
            self.seccomp.load()

    def note_baseline(self) -> None:
        """Read the address space in use now, while no job waits; the memory limit adds to it."""
        self.baseline = _address_space_bytes(self.statm)

    def limit(self, limits: Limits) -> None:
        """When the job arrives: hard resource limits, soft = hard.

        Only lowering is possible from here: the process has no capabilities (it is not root,
        or no longer root), so a hook can never raise a limit back up.
        """
        baseline = self.baseline or _address_space_bytes(self.statm)
        os.close(self.statm)
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


def _address_space_bytes(statm: int) -> int:
    return int(os.pread(statm, 200, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _ca_bundle(extra: str) -> bytes:
    """certifi's bundle (or the system's) followed by the operator's extra CAs."""
    base = _certifi_bundle() or ssl.get_default_verify_paths().cafile
    with open(extra, "rb") as file:
        data = file.read()
    if base and os.path.exists(base):
        with open(base, "rb") as file:
            data = file.read().rstrip(b"\n") + b"\n" + data
    return data


def _write_readable(data: bytes, folder: str) -> str:
    """A world-readable copy, for a jail without its own root (the bundle holds no secret)."""
    path = os.path.join(folder, "ca-bundle.pem")
    with open(path, "wb") as file:
        file.write(data)
    os.chmod(path, 0o644)
    return path


def _certifi_bundle() -> str | None:
    certifi = sys.modules.get("certifi")
    return certifi.where() if certifi else None
