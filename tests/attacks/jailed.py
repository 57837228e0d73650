"""Run raw Python under the process layer alone (see the `jailed` fixture in conftest.py).

This is what a hook would be left with after a complete escape from the language layer:
ordinary Python, in a process locked down exactly as the zygote locks down its children
(ProcessJail.start as the zygote does once, then .prepare and .limit as each child does),
optionally with the egress guard installed. With "jail": false the kernel jail is off, to
show what the other layers stop without it.
"""

import json
import os
import sys

# Everything an attack may use is imported now: after setuid the unprivileged uid may not be
# able to read the interpreter's standard library at all.
import ctypes  # noqa: F401
import errno  # noqa: F401
import resource  # noqa: F401
import signal  # noqa: F401
import socket  # noqa: F401
import subprocess  # noqa: F401
import threading  # noqa: F401
import _socket  # noqa: F401

from hookengine.sandbox.broker import BrokerClient
from hookengine.sandbox.egress import EgressGuard, EgressPolicy
from hookengine.sandbox.isolation import Limits, ProcessJail
from hookengine.sandbox.zygote import BROKER_SLOT


def main() -> None:
    spec = json.loads(sys.argv[1])
    answer_fd = spec["answer_fd"]
    if spec["egress"]:
        import requests.adapters  # noqa: F401 - the host map patches its transport
    jail = ProcessJail(spec["uid_base"], True, use_jail=spec["jail"], site=spec.get("site"))
    uid = jail.uid_for(spec["slot"])
    workdir = spec["workdir"]  # without the jail's tree (with it: its own tmpfs, /hook)
    if uid is not None:
        os.chown(workdir, uid, uid)
    jail.start(jail.uid_for(BROKER_SLOT), spec["scratch"])
    if jail.runs_dir is not None:
        os.rmdir(jail.runs_dir)  # this process works in the fixture's own directory
    keep = (answer_fd,)
    broker = None
    if jail.broker is not None:
        hook_end, broker_end = jail.broker.pair()
        jail.broker.grant(broker_end, spec["egress"] or EgressPolicy().to_dict())
        keep += (hook_end.fileno(),)
        broker = BrokerClient(hook_end)
    try:
        jail.prepare(workdir, uid, keep, os.getppid())
        jail.limit(Limits(**spec["limits"]))
        if spec["egress"]:
            EgressGuard(EgressPolicy(**spec["egress"])).install(broker)
        # The broker channel too: an escaped hook can speak the broker's protocol itself.
        namespace = {"workdir": os.getcwd(), "broker": broker}
        exec(compile(spec["code"], "attack.py", "exec"), namespace)
        answer = {"result": namespace.get("result")}
    except BaseException as error:  # noqa: BLE001 - every outcome is reported
        answer = {"error": type(error).__name__, "message": str(error),
                  "errno": getattr(error, "errno", None)}
    data = json.dumps(answer, default=repr).encode()
    while data:
        data = data[os.write(answer_fd, data):]
    os._exit(0)


if __name__ == "__main__":
    main()
