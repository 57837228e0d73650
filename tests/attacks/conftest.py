"""Fixtures for the attack suite: hostile hooks run in the session's one sandbox.

Every test here leaves the sandbox behind it checked: `sandbox_survives` (autouse) runs a
benign hook after each test and fails the test if that no longer succeeds.

`jailed` runs raw, unrestricted Python under the process layer alone (isolation.ProcessJail,
optionally with the egress guard), so each OS-level defence is tested as if the language
layer had already been broken.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from attacklib import (BENIGN, HOST_SECRETS, JAILED_UID_BASE, RECIPIENT, SMALL, Listener,
                       make_job)
from hookengine.sandbox.egress import EgressPolicy
from hookengine.sandbox.isolation import Limits

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:  # the provider stand-ins live in tests/standins
    sys.path.insert(0, str(TESTS))

@pytest.fixture
def run(sandbox):
    """run(source, **job fields) -> SandboxResult, with `.elapsed` (wall seconds) added."""
    def run(source: str, **kwargs):
        started = time.monotonic()
        result = sandbox.execute(make_job(source, **kwargs))
        result.elapsed = time.monotonic() - started
        return result
    return run


def assert_benign_runs(sandbox) -> None:
    result = sandbox.execute(make_job(BENIGN))
    assert result.status == "success", (result.status, result.error)
    assert result.result == {"to": RECIPIENT, "code": "123456", "json": "[1, 2]"}
    assert [line["message"] for line in result.logs] == [f"benign hook ran for {RECIPIENT}"]


@pytest.fixture(autouse=True)
def sandbox_survives(sandbox):
    """After every attack the same sandbox still runs a benign hook correctly."""
    yield
    assert_benign_runs(sandbox)


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that must receive nothing from a hook."""
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def udp_listener():
    server = Listener(socket.SOCK_DGRAM)
    yield server
    server.close()


@pytest.fixture
def world_dir():
    """A root-owned directory any uid may enter (unlike pytest's 0700 tmp_path), outside the
    /tmp, /var/tmp and /dev/shm that hook processes get private copies of."""
    path = tempfile.mkdtemp(prefix="hookengine-attacks-", dir="/run")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


JAILED = Path(__file__).with_name("jailed.py")


@pytest.fixture
def jailed():
    """jailed(code, limits=..., egress=None, slot=0, jail=True, site=None) -> dict: raw
    Python under the process layer alone (jail=False: without the kernel jail; site: as in
    an environment's zygote, that package directory readable). The code sets `result`;
    an exception comes back as {"error": name, "message": ..., "errno": ...}; a killed
    process as {"signal": n}."""
    def run(code: str, limits: Limits = SMALL, egress: EgressPolicy | None = None,
            slot: int = 0, timeout: float = 15, jail: bool = True,
            site: str | None = None) -> dict:
        read_fd, write_fd = os.pipe()
        scratch = tempfile.mkdtemp(prefix="hookengine-jailed-")
        os.chmod(scratch, 0o711)  # the hook's uid passes through to its working directory
        workdir = os.path.join(scratch, "work")
        os.mkdir(workdir, 0o700)
        spec = {"code": code, "workdir": workdir, "scratch": scratch, "limits": limits.to_dict(),
                "uid_base": JAILED_UID_BASE, "slot": slot, "answer_fd": write_fd,
                "egress": egress.to_dict() if egress else None, "jail": jail,
                "site": site}
        process = subprocess.Popen([sys.executable, str(JAILED), json.dumps(spec)],
                                   pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        os.close(write_fd)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([read_fd], [], [], max(0, deadline - time.monotonic()))
                if not ready:
                    process.kill()
                    raise AssertionError("the jailed process did not finish in time")
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            _, stderr = process.communicate(timeout=timeout)
            shutil.rmtree(scratch, ignore_errors=True)
        if process.returncode < 0:
            return {"signal": -process.returncode}
        assert chunks, f"jailed process exited {process.returncode}: {stderr.decode()[-2000:]}"
        return json.loads(b"".join(chunks))
    return run


@pytest.fixture(scope="session")
def host_secret_sandbox():
    """A second zygote, started while the test process holds host secrets in its environment
    (as a server would: its key, provider credentials, proxy settings)."""
    from hookengine.sandbox import Sandbox

    with pytest.MonkeyPatch.context() as patch:
        for name, value in HOST_SECRETS.items():
            patch.setenv(name, value)
        sandbox = Sandbox(["twilio", "vonage", "requests"]).start()
    yield sandbox
    sandbox.close()
