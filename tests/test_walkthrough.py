"""The README's walk-throughs, run step by step as a newcomer would type them.

Each ```sh block of a section is one step, run by bash in a directory laid out like a fresh
clone (hooks/, tests/ and the virtualenv linked in). A block whose first line is
`# in a second terminal` (or third, ...) starts a long-running process, kept running in the
background until the section is done; the next step waits until the port it listens on
answers. The only liberties taken: the README's fixed ports (8080 for the engine, 4010 for the
stand-in) become free ones, so parallel test runs do not collide.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverprocess import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BACKGROUND = re.compile(r"\A# in an? \w+ terminal\n")


def steps(section: str) -> list[str]:
    """The ```sh blocks of the README section titled `section`, in order, dedented."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```$", body, re.S | re.M)
    return ["".join(line[len(indent):] for line in block.splitlines(keepends=True))
            for indent, block in blocks]


@pytest.fixture
def checkout(tmp_path):
    """A directory that looks like a fresh clone with its virtualenv set up."""
    for name in ("hooks", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    return tmp_path


class Terminal:
    """The newcomer's shells: background steps keep running, the others run to completion.

    Shell variables carry from one step to the next as they would in one terminal.
    """

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.engine_port, self.standin_port = free_port(), free_port()
        self.state = cwd / ".walkthrough-state"
        self.state.write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKENGINE_")}
        self.env["HOOKENGINE_URL"] = f"http://127.0.0.1:{self.engine_port}"
        self.background: list[subprocess.Popen] = []

    def adapt(self, step: str) -> str:
        step = step.replace("hookengine serve", f"hookengine serve --port {self.engine_port}")
        return step.replace(":8080", f":{self.engine_port}").replace(
            "4010", str(self.standin_port))

    def run(self, step: str) -> str:
        step = self.adapt(step)
        if BACKGROUND.match(step):
            self._start(step)
            return ""
        # allexport, so that plain assignments (API=...) reach the next step like exports do
        script = f"set -a -e -o pipefail\nsource {self.state}\n{step}\nexport -p > {self.state}\n"
        done = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"step failed:\n{step}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def _start(self, step: str) -> None:
        log = open(self.cwd / f"background-{len(self.background)}.log", "wb")
        process = subprocess.Popen(["bash", "-c", step], cwd=self.cwd, env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)  # its own group, to stop it whole
        log.close()
        self.background.append(process)
        port = int(re.search(r"--port (\d+)", step).group(1))
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"{step} exited:\n{self._log(process)}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"{step} is not listening:\n" + \
                    self._log(process)
                time.sleep(0.1)

    def _log(self, process: subprocess.Popen) -> str:
        index = self.background.index(process)
        return (self.cwd / f"background-{index}.log").read_text(errors="replace")

    def close(self) -> None:
        for process in reversed(self.background):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


@pytest.fixture
def terminal(checkout):
    terminal = Terminal(checkout)
    yield terminal
    terminal.close()


def statuses(output: str) -> list[str]:
    return re.findall(r'"status": ?"(\w+)"', output)


def test_the_quick_tour(terminal):
    outputs = [terminal.run(step) for step in steps("Quick tour")]
    assert "statusCode" not in outputs[-1], outputs[-1]  # no API error along the way
    assert statuses(outputs[-1]) == ["success"]  # the run's record; then its logs:
    assert outputs[-1].count("registered on Username-Password-Authentication") == 2


def test_the_twilio_walkthrough(terminal):
    launch_standin, launch_engine, push, run, logs, execute = steps(
        "Send MFA codes with Twilio")
    terminal.run(launch_standin)
    terminal.run(launch_engine)

    pushed = terminal.run(push)
    assert pushed.splitlines()[0].startswith("created twilio-sms (")
    assert "still missing" not in pushed and "not set" not in pushed
    assert pushed.splitlines()[-1] == "send-phone-message: enabled hook is twilio-sms"

    ran = terminal.run(run)
    assert statuses(ran) == ["success"], ran
    assert re.search(r'"MessageID": "SM[0-9a-f]{32}"', ran)

    assert "stdout: Twilio accepted SMS SM" in terminal.run(logs)

    answer = terminal.run(execute)
    assert statuses(answer) == ["success"], answer
    assert re.search(r'"MessageID": ?"SM[0-9a-f]{32}"', answer)
