"""Shared pieces of the attack suite (its own module: both conftest.py files are "conftest")."""

from __future__ import annotations

import select
import socket
import threading
from dataclasses import replace

from hookengine.config import DEFAULTS
from hookengine.runner import limits_from
from hookengine.sandbox import Job
from hookengine.sandbox.egress import EgressPolicy
from hookengine.sandbox.isolation import Limits


def limits_with(**overrides) -> Limits:
    """The engine's default limits (config.SETTINGS), with `overrides`."""
    return replace(limits_from(DEFAULTS), **overrides)


DEPENDENCIES = {"twilio": "latest", "vonage": "latest", "requests": "latest"}
SMALL = limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=128)
RECIPIENT = "+15551234567"
ARGS = [RECIPIENT, "Your code is 123456", {"code": "123456", "message_type": "sms"}]
PARAMS = ["recipient", "text", "context"]
SECRETS = {"TOKEN": "s3cr3t-value"}
DEFAULT_EGRESS = EgressPolicy.for_hook(["twilio", "vonage"], [], {})
JAILED_UID_BASE = 64000  # not the session sandbox's uids: its rlimits are per uid

HOST_SECRETS = {"HOOKENGINE_SECRET_KEY": "host-secret-key-0f9e8d7c", "TWILIO_ACCOUNT_SID":
                "AC" + "f" * 32, "TWILIO_AUTH_TOKEN": "host-twilio-token-1a2b3c",
                "HTTPS_PROXY": "http://127.0.0.1:9", "REQUESTS_CA_BUNDLE": "/nonexistent.pem"}

BENIGN = '''
import json

def send_phone_message(recipient, text, context):
    print("benign hook ran for " + recipient)
    return {"to": recipient, "code": context.code, "json": json.dumps([1, 2])}
'''


def make_job(source: str, *, entry="send_phone_message", params=None, args=None,
             secrets=None, limits=SMALL, egress=None, dependencies=None) -> Job:
    return Job(source=source, entry=entry, params=list(params or PARAMS),
               args=list(ARGS if args is None else args),
               secrets=dict(SECRETS if secrets is None else secrets),
               dependencies=dict(DEPENDENCIES if dependencies is None else dependencies),
               limits=limits, egress=egress or DEFAULT_EGRESS,
               max_script_bytes=DEFAULTS["MAX_SCRIPT_BYTES"],
               max_ast_depth=DEFAULTS["MAX_AST_DEPTH"])


def refused(result, *fragments: str) -> str:
    """Assert the hook failed (status error) and its error names every fragment; return it."""
    assert result.status == "error", (result.status, result.result, result.error)
    text = f"{result.error['name']}: {result.error['message']}"
    for fragment in fragments:
        assert fragment in text, text
    return text


class Listener:
    """A TCP (or UDP) listener on loopback that records every connection or datagram."""

    def __init__(self, kind=socket.SOCK_STREAM, host="127.0.0.1", hold=False):
        self.hold = hold  # accept, then never answer nor close: a stalled server
        self.held: list = []
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind((host, 0))
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.kind = kind
        self.received: list = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            try:
                if self.kind == socket.SOCK_STREAM:
                    conn, peer = self.sock.accept()
                    if self.hold:
                        self.held.append(conn)
                        self.received.append((peer, b""))
                        continue
                    conn.settimeout(0.5)
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        data = b""
                    conn.close()
                    self.received.append((peer, data))
                else:
                    self.received.append(self.sock.recvfrom(4096))
            except OSError:
                return

    def close(self):
        self._stop = True
        self._thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def hook(body: str, imports: str = "") -> str:
    """A Send Phone Message hook whose body is `body` (indented for it), after `imports`."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{imports}\ndef send_phone_message(recipient, text, context):\n{lines}\n"
