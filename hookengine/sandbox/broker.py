"""The connection broker: the only way out of a hook's empty network namespace.

Hook processes live in a network namespace with no interface but a loopback that is down
(or, where namespaces cannot be had, under Landlock's rule of no TCP connect at all). The
broker is a small process forked by the zygote before the zygote leaves the host's network
namespace. For each run the zygote hands it one end of a socket pair together with that run's
egress policy; the hook's guard asks over the other end to resolve a name or to connect, and
the broker applies the same policy (allowlist, address rules, host map) before it resolves or
connects, then passes the connected socket back over SCM_RIGHTS. A name that is not allowed
is never sent to a resolver, and nothing the hook process does itself reaches a network.
"""

from __future__ import annotations

import array
import errno
import json
import logging
import os
import selectors
import signal
import socket
import threading

from hookengine.sandbox.egress import EgressDenied, EgressGuard, EgressPolicy

log = logging.getLogger("hookengine.broker")

MAX_MESSAGE = 65536
MAX_FD = 4096
CONNECT_TIMEOUT = 30.0  # the run's own deadline usually ends a slow connect sooner


def _send(sock: socket.socket, message: dict, fd: int | None = None) -> None:
    data = json.dumps(message).encode()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd else []
    sock.sendmsg([data], ancillary)


def _receive(sock: socket.socket) -> tuple[dict | None, int | None]:
    """One message and the descriptor that came with it, if any; (None, None) at EOF."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, None
    return json.loads(data), (fds[0] if fds else None)


class Broker:
    """The zygote's handle on the broker process."""

    def __init__(self, pid: int, control: socket.socket):
        self.pid, self.control = pid, control

    @classmethod
    def start(cls, uid: int | None) -> "Broker":
        """Fork the broker (before this process leaves the host's network namespace)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the broker process
            ours.close()
            _serve(theirs, uid)
        theirs.close()
        return cls(pid, ours)

    @staticmethod
    def pair() -> tuple[socket.socket, socket.socket]:
        """(the hook's end, the broker's end) of one run's channel, made when a spare is
        forked; the broker's end is handed over with the policy when the job arrives."""
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def grant(self, broker_end: socket.socket, policy: dict) -> None:
        _send(self.control, policy, broker_end.fileno())
        broker_end.close()

    def stop(self) -> None:
        self.control.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _serve(control: socket.socket, uid: int | None) -> None:  # pragma: no cover - forked
    """The broker's main loop: one thread per granted run, until the zygote goes."""
    code = 0
    try:
        # Nothing of the zygote's but the control channel: not its listener, not its pipes.
        os.closerange(3, control.fileno())
        os.closerange(control.fileno() + 1, MAX_FD)
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        if uid is not None:  # it connects for hooks: it needs no privilege for that
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _dispatch(control)
    except BaseException:  # noqa: BLE001 - report, and let the zygote see the broker gone
        log.exception("connection broker stopped")
        code = 1
    finally:
        os._exit(code)


def _dispatch(control: socket.socket) -> None:  # pragma: no cover - forked
    """Hold each granted run's channel until its first request, then give it a thread.

    Most runs never connect anywhere: they cost the broker one descriptor and no thread.
    When the zygote goes, the runs already granted are still served, then the broker ends.
    """
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    threads: list[threading.Thread] = []
    while selector.get_map():
        for key, _ in selector.select():
            if key.fileobj is control:
                policy, fd = _receive(control)
                if policy is None:
                    selector.unregister(control)  # the zygote is gone
                elif fd is not None:
                    selector.register(socket.socket(fileno=fd), selectors.EVENT_READ,
                                      EgressPolicy(**policy))
                continue
            session = key.fileobj
            selector.unregister(session)
            try:
                waiting = session.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except OSError:
                waiting = b""
            if not waiting:  # the run ended without asking for anything
                session.close()
                continue
            threads = [t for t in threads if t.is_alive()]
            threads.append(threading.Thread(target=_session, args=(session, key.data)))
            threads[-1].start()
    for thread in threads:
        thread.join()


def _session(sock: socket.socket, policy: EgressPolicy) -> None:  # pragma: no cover - forked
    """Answer one run's requests in order until it hangs up."""
    guard = EgressGuard(policy)
    with sock:
        while True:
            try:
                request, stray = _receive(sock)
            except (OSError, ValueError):
                return
            if stray is not None:
                os.close(stray)  # a hook has nothing to hand the broker
            if request is None:
                return
            fd = None
            try:
                answer, fd = _handle(guard, request)
            except EgressDenied as error:
                answer = {"error": "EgressDenied", "message": str(error)}
            except OSError as error:
                answer = {"error": "OSError", "errno": error.errno or 0,
                          "message": error.strerror or str(error)}
            except (KeyError, TypeError, ValueError) as error:
                answer = {"error": "ValueError", "message": f"bad broker request: {error}"}
            try:
                _send(sock, answer, fd)
            except OSError:
                return
            finally:
                if fd is not None:
                    os.close(fd)


def _handle(guard: EgressGuard, request: dict) -> tuple[dict, int | None]:
    if request["op"] == "resolve":
        results = guard.resolve(str(request["host"]), request["port"],
                                int(request["family"]), socket.SOCK_STREAM)
        return {"results": [[int(f), int(t), p, c, list(a)] for f, t, p, c, a in results]}, None
    if request["op"] == "connect":
        family = int(request["family"])
        address = tuple(request["address"])
        guard.check_address(family, address)
        timeout = min(float(request.get("timeout") or CONNECT_TIMEOUT), CONNECT_TIMEOUT)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setblocking(True)
            return {"ok": True}, sock.detach()
        finally:
            sock.close()
    raise ValueError(f"unknown operation {request['op']!r}")


class BrokerClient:
    """In the hook process: asks the broker to resolve and connect for it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def _ask(self, request: dict) -> tuple[dict, int | None]:
        _send(self.sock, request)
        answer, fd = _receive(self.sock)
        if answer is None:
            raise ConnectionError("the connection broker is gone")
        if "error" in answer:
            if answer["error"] == "EgressDenied":
                raise EgressDenied(answer["message"])
            raise OSError(answer.get("errno", 0), answer["message"])
        return answer, fd

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        number = port.decode() if isinstance(port, bytes) else port
        answer, _ = self._ask({"op": "resolve", "host": name, "port": number,
                               "family": int(family)})
        return [(socket.AddressFamily(f), socket.SocketKind(t), p, c, tuple(a))
                for f, t, p, c, a in answer["results"]]

    def connect(self, sock: socket.socket, address) -> None:
        """Connect `sock` through the broker: the connected socket takes its descriptor."""
        timeout = sock.gettimeout()
        _, fd = self._ask({"op": "connect", "family": int(sock.family),
                           "address": list(address[:2]), "timeout": timeout})
        try:
            os.dup2(fd, sock.fileno())
        finally:
            os.close(fd)
        sock.settimeout(timeout)  # the descriptor is new: set its blocking mode again

    def connect_ex(self, sock: socket.socket, address) -> int:
        """As socket.connect_ex: an error number instead of OSError (a refusal still raises)."""
        try:
            self.connect(sock, address)
        except EgressDenied:
            raise
        except OSError as error:
            return error.errno or errno.ECONNREFUSED
        return 0
