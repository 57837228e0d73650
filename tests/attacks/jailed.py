"""Run raw Python under the process layer alone (see the `jailed` fixture in conftest.py).

This is what a hook would be left with after a complete escape from the language layer:
ordinary Python, in a process locked down exactly as the zygote locks down its children
(ProcessJail.prepare, then .limit), optionally with the egress guard installed.
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

from hookengine.sandbox.egress import EgressGuard, EgressPolicy
from hookengine.sandbox.isolation import Limits, ProcessJail


def main() -> None:
    spec = json.loads(sys.argv[1])
    answer_fd = spec["answer_fd"]
    jail = ProcessJail(spec["uid_base"], True)
    uid = jail.uid_for(spec["slot"])
    workdir = spec["workdir"]
    if uid is not None:
        os.chown(workdir, uid, uid)
    if spec["egress"]:
        import requests.adapters  # noqa: F401 - the host map patches its transport
    try:
        jail.prepare(workdir, uid, (answer_fd,), os.getppid())
        jail.limit(Limits(**spec["limits"]))
        if spec["egress"]:
            EgressGuard(EgressPolicy(**spec["egress"])).install()
        namespace = {"workdir": workdir}
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
