"""Secrets: a hook sees its own and nothing else; not other runs' (even concurrent ones), not
the host's, not the zygote's."""

import re
import threading

import pytest

from attacklib import HOST_SECRETS, hook, make_job, refused


SHOW_SECRETS = hook('''
secrets = context.webtask.secrets
time.sleep(0.3)  # overlap with the other runs
print("I hold " + ",".join(sorted(secrets.keys())))
return {"names": sorted(secrets.keys()), "values": [secrets[k] for k in sorted(secrets.keys())],
        "context": sorted(context.keys())}
''', "import time")


def test_a_hook_sees_exactly_its_own_secrets(run):
    result = run(SHOW_SECRETS, secrets={"API_KEY": "k-1", "API_SECRET": "s-1"})
    assert result.status == "success", result.error
    assert result.result == {"names": ["API_KEY", "API_SECRET"], "values": ["k-1", "s-1"],
                             "context": ["code", "message_type", "webtask"]}


def test_concurrent_runs_never_see_each_others_secrets(sandbox):
    secrets = [{"TOKEN": f"tenant-{i}-token-{i * 7919:06d}", f"ONLY_{i}": f"only-{i}"}
               for i in range(8)]
    results = [None] * 8

    def execute(i):
        results[i] = sandbox.execute(make_job(SHOW_SECRETS, secrets=secrets[i]))

    threads = [threading.Thread(target=execute, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, result in enumerate(results):
        assert result.status == "success", (i, result.error)
        assert result.result["names"] == sorted(secrets[i])
        assert result.result["values"] == [secrets[i][k] for k in sorted(secrets[i])]
        seen = repr(result.result) + repr(result.logs)
        for j, other in enumerate(secrets):
            if j != i:
                assert all(value not in seen for value in other.values()), (i, j)


@pytest.mark.parametrize("path, fragment", [
    ("requests.utils.os.environ", "module 'os'"),
    ("twilio.base.client_base.os.environ.get('TWILIO_AUTH_TOKEN')", "module 'os'"),
    ("requests.utils.sys.modules['hookengine.sandbox.child']", "module 'sys'"),
])
def test_environment_and_engine_modules_are_unreachable(run, path, fragment):
    result = run(hook(f"return {path}", "import requests.utils, twilio.base.client_base"))
    refused(result, fragment)


def test_host_secrets_never_reach_the_zygote_or_the_hook(host_secret_sandbox):
    pid = host_secret_sandbox.process.pid
    with open(f"/proc/{pid}/environ", "rb") as environ:
        names = {item.split(b"=", 1)[0].decode() for item in environ.read().split(b"\0")
                 if item}
    assert names <= {"PATH", "LANG", "MALLOC_ARENA_MAX", "PYTHONDONTWRITEBYTECODE",
                     "PYTHONPATH"}
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        arguments = cmdline.read()
    for value in HOST_SECRETS.values():
        assert value.encode() not in arguments
    result = host_secret_sandbox.execute(make_job(hook('''
return [Client().password, requests.utils.get_environ_proxies("https://api.twilio.com/")]
''', "import requests.utils\nfrom twilio.rest import Client")))
    assert result.status == "success", result.error
    assert result.result == [None, {}]


def _memory_holds(pid: int, needles: list[bytes]) -> list[bytes]:
    """Which needles occur anywhere in the readable memory of process `pid` (we are root)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not match or "r" not in match.group(3):
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            try:
                memory.seek(start)
                data = memory.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            found.update(needle for needle in needles if needle in data)
    return sorted(found)


def test_the_zygote_keeps_no_residue_of_a_runs_secrets(sandbox):
    """Every child is a copy of the zygote's memory: a run's secrets and trigger data must
    never be there (was a hole: the zygote parsed them and freed them uncleared)."""
    secret, code = "zygote-residue-secret-4d2e91", "918273"
    args = ["+15550001111", f"Your code is {code}", {"code": code, "message_type": "sms"}]
    # The hook uses its data but does not send it back (an answer is the hook's to fill).
    result = sandbox.execute(make_job(hook(
        "return [len(context.webtask.secrets.TOKEN), len(recipient), len(context.code)]"),
        secrets={"TOKEN": secret}, args=args))
    assert result.status == "success", result.error
    assert result.result == [len(secret), 12, 6]
    assert _memory_holds(sandbox.process.pid, [secret.encode(), b"+15550001111",
                                               f"Your code is {code}".encode()]) == []
