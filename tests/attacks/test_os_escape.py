"""Escapes to the operating system: processes, threads, signals, /proc, limits, files, state
left for the next run, and the kernel-level filters.

Two kinds of test: hooks (everything a hook can try, stopped by the language layer or by the
process it runs in), and `jailed` raw Python (what a hook could do after a complete escape
from the language layer, stopped by the process layer alone)."""

import errno
import os
import signal
import threading
import time

import pytest

from attacklib import SMALL, hook, limits_with, refused
from hookengine.sandbox.isolation import _private_dirs


# -- hooks

@pytest.mark.parametrize("module", ["os", "posix", "subprocess", "threading", "multiprocessing",
                                    "concurrent.futures", "signal", "resource", "ctypes",
                                    "socket", "asyncio", "pty", "pickle", "shutil", "io",
                                    "sys", "gc", "inspect", "builtins", "importlib"])
def test_process_and_interpreter_modules_are_not_importable(run, module):
    result = run(f"import {module}\ndef send_phone_message(recipient, text, context):\n"
                 "    return 1\n")
    if module == "builtins":
        refused(result, "CompileError", "builtins")
    else:
        refused(result, "ImportError", f"No module named '{module}'")


@pytest.mark.parametrize("path", [
    "twilio.http.http_client.os.fork()",
    "requests.utils.os.kill(requests.utils.os.getppid(), 9)",
    "requests.cookies.threading.Thread(target=print).start()",
    "requests.utils.os.system('id')",
    "requests.utils.sys.exit(0)",
    "requests.utils.os.setrlimit",
])
def test_process_primitives_are_unreachable_through_the_sdks(run, path):
    result = run(hook(f"return {path}", "import twilio.http.http_client, requests.utils, "
                                        "requests.cookies"))
    refused(result, "AccessDenied", "which hooks may not use")


MUTATE = '''
results = []
for attempt in ATTEMPTS:
    try:
        attempt()
        results.append("changed")
    except Exception as error:
        results.append("refused")
return results
'''

ATTEMPTS = '''
def a1():
    json.dumps = len
def a2():
    Client.region = "attacker"
def a3():
    requests.hooks.HOOKS.append("pwned")
def a4():
    requests.utils.DEFAULT_PORTS["http"] = 8080
def a5():
    requests.Session.trust_env = False
def a6():
    setattr(requests.adapters, "DEFAULT_RETRIES", 99)
ATTEMPTS = [a1, a2, a3, a4, a5, a6]
'''

READ_BACK = '''
return [json.dumps([1]), hasattr(Client, "region"), list(requests.hooks.HOOKS),
        requests.utils.DEFAULT_PORTS["http"], hasattr(requests.Session, "trust_env"),
        requests.adapters.DEFAULT_RETRIES]
'''

SHARED_IMPORTS = "import json\nimport requests, requests.hooks, requests.utils, " \
                 "requests.adapters\nfrom twilio.rest import Client\n"


def test_module_state_changed_in_one_run_is_not_seen_by_the_next(run):
    first = run(hook(MUTATE, SHARED_IMPORTS + ATTEMPTS))
    assert first.status == "success", first.error
    # Module and class attributes are read-only; the lists and dicts they hold are not...
    assert first.result == ["refused", "refused", "changed", "changed", "refused", "refused"]
    # ...but every run is a fresh process, so the next run sees none of it.
    second = run(hook(READ_BACK, SHARED_IMPORTS))
    assert second.status == "success", second.error
    assert second.result == ["[1]", False, ["response"], 80, False, 0]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.split(":\t", 1) for line in status.read().splitlines() if ":\t" in line)


def _limits(pid: int) -> dict:
    with open(f"/proc/{pid}/limits") as limits:
        rows = limits.read().splitlines()[1:]
    return {row[:26].strip(): row[26:47].strip() for row in rows}


def test_the_hook_process_is_locked_down(sandbox, run):
    """Look at the real process running a hook, from outside, while it sleeps."""
    limits = limits_with(timeout_seconds=5, cpu_seconds=3, memory_mb=128, max_open_files=48,
                         max_file_bytes=524288)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run(
        hook("time.sleep(1.5)\nreturn 'slept'", "import time"), limits=limits,
        secrets={"TOKEN": "proc-visible-secret-77"})))
    runner.start()
    try:
        deadline = time.monotonic() + 4
        hook_pid = None
        while hook_pid is None and time.monotonic() < deadline:
            for pid in _children(sandbox.process.pid):
                try:
                    if _limits(pid)["Max cpu time"] == "3":
                        hook_pid = pid
                except (OSError, KeyError):
                    pass
            time.sleep(0.05)
        assert hook_pid is not None, "no child of the zygote runs with the hook's limits"
        status, rlimits = _status(hook_pid), _limits(hook_pid)
        with open(f"/proc/{hook_pid}/environ", "rb") as environ:
            env = environ.read()
        with open(f"/proc/{hook_pid}/stat") as stat:
            session = int(stat.read().rsplit(")", 1)[1].split()[3])
        namespaces_differ = os.readlink(f"/proc/{hook_pid}/ns/mnt") != os.readlink(
            "/proc/self/ns/mnt")
    finally:
        runner.join()
    assert outcome["result"].status == "success"
    uid = int(status["Uid"].split()[0])
    assert uid >= sandbox.uid_base and all(int(u) == uid for u in status["Uid"].split())
    assert int(status["Gid"].split()[0]) == uid
    assert status["CapEff"].strip("0\n") == "" and status["CapPrm"].strip("0\n") == ""
    assert status["NoNewPrivs"].strip() == "1"
    if sandbox.layers["seccomp"]:
        assert status["Seccomp"].strip() == "2"  # a filter is loaded
    assert rlimits["Max cpu time"] == "3"
    assert rlimits["Max open files"] == "48"
    assert rlimits["Max file size"] == "524288"
    assert rlimits["Max processes"] == "0"
    assert rlimits["Max core file size"] == "0"
    assert rlimits["Max address space"] != "unlimited"
    assert session == hook_pid  # its own session: killed as a group
    assert b"proc-visible-secret-77" not in env and b"s3cr3t" not in env
    assert namespaces_differ == bool(sandbox.layers["namespaces"])


# -- raw Python under the process layer alone

@pytest.mark.parametrize("name, code, expected", [
    ("fork", "import os\nresult = os.fork()", ("OSError", "PermissionError",
                                                  "BlockingIOError")),
    ("thread", "import threading\nthreading.Thread(target=print).start()",
     ("RuntimeError",)),
    ("execve", "import os\nos.execv('/bin/true', ['true'])", ("PermissionError",)),
    ("subprocess", "import subprocess\nresult = subprocess.run(['/bin/true']).returncode",
     ("PermissionError", "OSError", "BlockingIOError")),
    ("orphan", "import os\nif os.fork() == 0:\n    os.setsid()\n    os._exit(0)",
     ("OSError", "PermissionError", "BlockingIOError")),
    ("signal the parent", "import os\nos.kill(os.getppid(), 0)", ("PermissionError",)),
    ("signal init", "import os\nos.kill(1, 0)", ("PermissionError", "ProcessLookupError")),
    ("parent environ", "import os\nresult = open(f'/proc/{os.getppid()}/environ').read()",
     ("PermissionError", "FileNotFoundError")),
    ("parent memory", "import os\nresult = open(f'/proc/{os.getppid()}/mem', 'rb').read(1)",
     ("PermissionError", "FileNotFoundError")),
    ("own environ", "result = open('/proc/self/environ').read()",
     ("PermissionError", "FileNotFoundError")),
    ("raise cpu limit", "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (3600, 3600))",
     ("ValueError", "PermissionError")),
    ("raise file limit",
     "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))",
     ("ValueError", "PermissionError")),
    ("become root", "import os\nos.setuid(0)", ("PermissionError",)),
    ("netlink socket", "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)",
     ("PermissionError",)),
    ("packet socket", "import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)",
     ("PermissionError",)),
    ("serve", "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(1)",
     ("PermissionError",)),
    ("new user namespace",
     "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
     "if libc.unshare(0x10000000) != 0:\n"
     "    raise PermissionError(ctypes.get_errno(), 'unshare')",
     ("PermissionError",)),
    ("mount", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
     "if libc.mount(b'tmpfs', b'/mnt', b'tmpfs', 0, None) != 0:\n"
     "    raise PermissionError(ctypes.get_errno(), 'mount')", ("PermissionError",)),
    ("memory", "result = len(b'x' * (1024 * 1024 * 1024))", ("MemoryError",)),
])
def test_the_process_layer_alone_stops(jailed, name, code, expected):
    answer = jailed(code)
    assert answer.get("error") in expected, answer


def test_descriptor_exhaustion_stops_at_the_limit(jailed):
    answer = jailed('''
import os
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as error:
    result = [len(fds), error.errno]
''')
    count, code = answer["result"]
    assert code == errno.EMFILE
    assert count < SMALL.max_open_files


def test_disk_fill_stops_at_the_file_size_limit(jailed):
    answer = jailed('''
import os
written = 0
try:
    with open("fill.bin", "wb", buffering=0) as handle:
        for i in range(64):
            written += handle.write(b"x" * 65536)
except OSError as error:
    result = [error.errno, os.path.getsize("fill.bin")]
''')
    code, size = answer["result"]
    assert code == errno.EFBIG
    assert size <= SMALL.max_file_bytes


def test_cpu_loop_is_killed_by_the_kernel(jailed):
    answer = jailed("while True:\n    pass", limits=limits_with(cpu_seconds=1, memory_mb=128))
    assert answer.get("signal") in (signal.SIGXCPU, signal.SIGKILL), answer


def test_the_zygote_socket_is_out_of_reach(jailed, sandbox):
    answer = jailed(f'''
import socket
s = socket.socket(socket.AF_UNIX)
s.connect({sandbox.socket_path!r})
result = "connected"
''')
    assert answer.get("error") in ("PermissionError", "FileNotFoundError"), answer


@pytest.mark.parametrize("jail, refusal", [(False, "PermissionError"),
                                           (True, "FileNotFoundError")])
def test_a_root_only_file_is_unreadable(jailed, world_dir, jail, refusal):
    """The uid layer alone refuses it; the jail alone does not even show it."""
    secret = world_dir / "engine.key"
    secret.write_text("ENGINE-KEY-91c2")
    os.chmod(secret, 0o600)
    answer = jailed(f"result = open({str(secret)!r}).read()", jail=jail)
    assert answer.get("error") == refusal, answer


@pytest.mark.parametrize("directory", ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"])
def test_files_in_world_writable_dirs_do_not_outlive_the_run(jailed, directory):
    """Without the jail: each world-writable dir is the child's own empty tmpfs."""
    if directory not in _private_dirs():
        # Absent, not world-writable, or (in a checkout under /tmp) holding the engine's code.
        pytest.skip(f"{directory} is not made private on this host")
    path = f"{directory}/left-behind"
    first = jailed(f"open({path!r}, 'w').write('x')\nresult = 'written'", slot=3, jail=False)
    assert first == {"result": "written"}
    second = jailed(f"import os\nresult = os.path.exists({path!r})", slot=3, jail=False)
    assert second == {"result": False}
    assert not os.path.exists(path)


@pytest.mark.parametrize("directory", ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"])
def test_in_the_jail_world_writable_dirs_are_not_there(jailed, directory):
    path = f"{directory}/left-behind"
    answer = jailed(f"open({path!r}, 'w').write('x')\nresult = 'written'", slot=3)
    assert answer.get("error") in ("FileNotFoundError", "PermissionError", "OSError"), answer
    assert not os.path.exists(path)


def test_seccomp_is_reported_and_refuses_execve(sandbox, jailed):
    assert sandbox.layers["seccomp"] is True  # pyseccomp is installed on this engine
    answer = jailed("import os\nos.execv('/bin/sh', ['sh', '-c', 'true'])")
    assert answer == {"error": "PermissionError", "message": "[Errno 1] Operation not permitted",
                      "errno": errno.EPERM}
