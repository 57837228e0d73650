"""Sandbox speed: per-execution cost against in-process exec and a fresh process per run."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import median_of_paced, median_of_rounds, record, rss_kb
from hookengine.config import DEFAULTS
from hookengine.runner import limits_from
from hookengine.sandbox import Job, Sandbox
from hookengine.sandbox.contract import HOOK_ERRORS, HOOK_FILENAME, LogSink, hook_arguments
from hookengine.sandbox.egress import EgressPolicy
from hookengine.sandbox.policy import Guard, build_globals, compile_hook

TRIVIAL = """
def send_phone_message(recipient, text, context):
    print("sending", context.code)
    return {"MessageID": "m-" + context.code}
"""

SDK_HOOK = """
import vonage
from twilio.rest import Client
from twilio.http.http_client import TwilioHttpClient

def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    client = Client(secrets.SID, secrets.TOKEN, http_client=TwilioHttpClient(timeout=10))
    message = client.messages.create(to=recipient, from_="+15017122661", body=text)
    return {"MessageID": message.sid}
"""

# The same work as SDK_HOOK without any sandbox, in a new interpreter each time.
FRESH_PROCESS = """
import vonage
from twilio.rest import Client
from twilio.http.http_client import TwilioHttpClient
from hookengine.sandbox.egress import EgressGuard, EgressPolicy
EgressGuard(EgressPolicy(("*.twilio.com",), (), {{"api.twilio.com": "{url}"}})).install()
client = Client("{sid}", "{token}", http_client=TwilioHttpClient(timeout=10))
print(client.messages.create(to="+15558675310", from_="+15017122661", body="hi").sid)
"""

PAYLOAD = ["+15558675310", "Your code is 123456", {"code": "123456", "message_type": "sms"}]
PARAMS = ["recipient", "text", "context"]


def job(source: str, secrets: dict, host_map: dict | None = None,
        dependencies=("twilio", "vonage")) -> Job:
    return Job(source=source, entry="send_phone_message", params=PARAMS, args=PAYLOAD,
               secrets=secrets, dependencies={name: "latest" for name in dependencies},
               limits=limits_from(DEFAULTS),
               egress=EgressPolicy.for_hook(dependencies, [], host_map or {}),
               max_script_bytes=DEFAULTS["MAX_SCRIPT_BYTES"],
               max_ast_depth=DEFAULTS["MAX_AST_DEPTH"])


def in_process_floor(source: str):
    """Compiled once, exec'd per call in this process: no isolation at all (the floor)."""
    code = compile_hook(source, HOOK_FILENAME, 102400, 100).code

    def call():
        sink = LogSink(65536, lambda line: None)
        glb = build_globals(Guard(frozenset()), sink.printer_factory(), HOOK_ERRORS)
        exec(code, glb)
        glb["send_phone_message"](*hook_arguments(PARAMS, PAYLOAD, {}))
    return call


def run(rounds: int = 3) -> None:
    from standins import StandIn
    from standins.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, create_app

    print("sandbox: starting the zygotes (bare and with SDKs) and a Twilio stand-in",
          flush=True)
    bare = Sandbox([]).start()  # hooks without dependencies fork from this one (as the engine)
    sandbox = Sandbox(["twilio", "vonage", "requests"]).start()
    with StandIn(create_app()) as twilio:
        secrets = {"SID": TEST_ACCOUNT_SID, "TOKEN": TEST_AUTH_TOKEN}
        trivial = job(TRIVIAL, {}, dependencies=())
        sdk = job(SDK_HOOK, secrets, {"api.twilio.com": twilio.url})
        assert bare.execute(trivial).status == "success"
        outcome = sandbox.execute(sdk)
        assert outcome.status == "success", outcome.error

        floor = median_of_rounds(in_process_floor(TRIVIAL), 200, rounds)
        spaced = median_of_paced(lambda: bare.execute(trivial), 0.02, rounds, 40)
        record("trivial hook, isolated execution, one every 20 ms (median ms)",
               f"{spaced:.2f}", f"in-process exec {floor:.3f} ms",
               f"{spaced / floor:.0f}x the floor (goal <= 5 ms)")
        isolated = median_of_rounds(lambda: bare.execute(trivial), 40, rounds)
        record("trivial hook, isolated execution, back to back (median ms)",
               f"{isolated:.2f}", f"in-process exec {floor:.3f} ms",
               f"{isolated / floor:.0f}x the floor")

        sdk_ms = median_of_rounds(lambda: sandbox.execute(sdk), 20, rounds)
        script = FRESH_PROCESS.format(url=twilio.url, sid=TEST_ACCOUNT_SID,
                                      token=TEST_AUTH_TOKEN)
        fresh = median_of_rounds(lambda: subprocess.run([sys.executable, "-c", script],
                                                        check=True, capture_output=True),
                                 3, rounds)
        record("SDK hook (twilio+vonage, sends 1 SMS), isolated (median ms)", f"{sdk_ms:.2f}",
               f"fresh python process {fresh:.0f} ms", f"{fresh / sdk_ms:.0f}x faster")
    record("zygote resident memory, with SDKs / bare (MB)",
           f"{rss_kb(sandbox.process.pid) / 1024:.0f} / {rss_kb(bare.process.pid) / 1024:.0f}",
           "", "goal <= 150")
    sandbox.close()
    bare.close()


if __name__ == "__main__":
    run()
