"""Every sample hook in hooks/, uploaded unchanged to a real server, run against the stand-ins.

One `hookengine serve` process and one stand-in per provider serve the whole module; the
server's HOOKENGINE_HOST_MAP sends the SDKs' fixed provider hosts to the stand-ins, so the
hooks run exactly as they would against Twilio, Vonage and Infobip. Each test creates the
hooks it needs under its own names and puts the stand-ins back up before it starts.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from serverprocess import ServerProcess
from standins import StandIn
from standins import infobip as infobip_standin
from standins import twilio as twilio_standin
from standins import vonage as vonage_standin

ROOT = Path(__file__).resolve().parent.parent
HOOK_FILES = sorted((ROOT / "hooks").glob("*.py"))

# Which stand-in answers for which provider host.
PROVIDER_HOSTS = {"twilio": ("api.twilio.com", "verify.twilio.com"),
                  "vonage": ("rest.nexmo.com", "api.nexmo.com"),
                  "infobip": ("api.infobip.com",)}
RECIPIENT, RECIPIENT_DIGITS = "+15558675310", "15558675310"
TWILIO_NUMBER = "+15017122661"
VONAGE_NUMBER = "447700900001"
INFOBIP_SENDER = "InfoSMS"
# A national number without country code: every provider refuses it, also reduced to digits.
INVALID_NUMBER = "0800 123 456"
# Stands for a second RSA private key, one the Vonage application does not know.
ANOTHER_KEY = "<another private key>"
TWILIO_SID, TWILIO_TOKEN = twilio_standin.TEST_ACCOUNT_SID, twilio_standin.TEST_AUTH_TOKEN
RECORD_FIELDS = {"id", "hook_id", "trigger_id", "source", "status", "payload", "result",
                 "error", "logs", "stats", "started_at", "ended_at"}
TIMINGS = ("total_duration_ms", "boot_duration_ms", "hook_duration_ms")


# --- reading a sample's PEP 723 block (as the spec's reference expression does) ---

PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


def block_of(path: Path) -> dict:
    """The sample's [tool.hookengine] table: trigger and secrets."""
    [block] = [m for m in PEP723.finditer(path.read_text()) if m.group("type") == "script"]
    lines = block.group("content").splitlines(keepends=True)
    toml = "".join(line[2:] if line.startswith("# ") else line[1:] for line in lines)
    return tomllib.loads(toml)["tool"]["hookengine"]


def hook_name(stem: str, variant: str = "") -> str:
    """The hook's name: the file's stem as `hookengine push` names it, plus a variant."""
    return stem.replace("_", "-") + (f"-{variant}" if variant else "")


def rsa_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


# --- what each phone sample must make its provider receive ---

def check_twilio_message(sent, payload, provider):
    assert (sent.method, sent.path) == (
        "POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", TWILIO_SID)
    assert sent.form == {"To": payload["recipient"], "From": TWILIO_NUMBER,
                         "Body": payload["text"]}
    assert payload["context"]["code"] in sent.form["Body"]


def check_twilio_call(sent, payload, provider):
    assert (sent.method, sent.path) == ("POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Calls.json")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", TWILIO_SID)
    assert {k: v for k, v in sent.form.items() if k != "Twiml"} == {
        "To": payload["recipient"], "From": TWILIO_NUMBER}
    spoken = ", ".join(payload["context"]["code"])  # "4, 8, 2, 9, 1, 3": one digit at a time
    twiml = ET.fromstring(sent.form["Twiml"])
    assert twiml.tag == "Response"
    assert [(e.tag, e.text, e.attrib) for e in twiml] == [
        ("Say", f"Your verification code is {spoken}.", {}),
        ("Pause", None, {"length": "1"}),
        ("Say", f"Again, your code is {spoken}.", {})]


def check_twilio_verification(sent, payload, provider):
    channel = {"sms": "sms", "voice": "call"}[payload["context"]["message_type"]]
    service = twilio_standin.TEST_SERVICE_SID
    assert (sent.method, sent.path) == ("POST", f"/v2/Services/{service}/Verifications")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", TWILIO_SID)
    assert sent.form == {"To": payload["recipient"], "Channel": channel,
                         "CustomCode": payload["context"]["code"]}
    # The code the user receives is the one Verify approves.
    check = requests.post(f"{provider.url}/v2/Services/{service}/VerificationCheck",
                          data={"To": payload["recipient"], "Code": payload["context"]["code"]},
                          auth=(TWILIO_SID, TWILIO_TOKEN), timeout=5)
    assert (check.status_code, check.json()["status"]) == (200, "approved")


def check_vonage_sms(sent, payload, provider):
    assert (sent.method, sent.path) == ("POST", "/sms/json")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", vonage_standin.TEST_API_KEY)
    kind = "text" if payload["text"].isascii() else "unicode"
    assert sent.form == {"to": re.sub("[^0-9]", "", payload["recipient"]), "from": VONAGE_NUMBER,
                         "text": payload["text"], "type": kind}
    assert payload["context"]["code"] in sent.form["text"]


def check_vonage_call(sent, payload, provider):
    assert (sent.method, sent.path, sent.auth_scheme) == ("POST", "/v1/calls", "bearer")
    # The stand-in verified the RS256 signature with the application's public key.
    token = sent.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["application_id"] == vonage_standin.TEST_APPLICATION_ID
    spoken = ", ".join(payload["context"]["code"])
    assert sent.json == {
        "to": [{"type": "phone", "number": RECIPIENT_DIGITS}],
        "from": {"type": "phone", "number": VONAGE_NUMBER},
        "ncco": [{"action": "talk", "text": f"Your verification code is {spoken}.", "loop": 2}]}


def check_infobip_sms(sent, payload, provider):
    assert (sent.method, sent.path, sent.auth_scheme) == ("POST", "/sms/2/text/advanced", "app")
    assert sent.headers["Authorization"] == "App " + infobip_standin.TEST_API_KEY
    assert sent.json == {"messages": [{"destinations": [{"to": RECIPIENT_DIGITS}],
                                       "from": INFOBIP_SENDER, "text": payload["text"]}]}


# --- what each other trigger's sample must answer to the trigger's sample payload ---

def check_credentials_exchange(record, payload):
    client = payload["client"]
    assert record["result"] == {"scope": payload["scope"],
                                "https://example.com/plan": client["metadata"]["plan"]}
    assert messages(record) == [f"Token for client {client['id']} to {payload['audience']}, "
                                f"plan {client['metadata']['plan']}"]


def check_pre_user_registration(record, payload):
    connection = payload["context"]["connection"]["name"]
    assert record["result"] == {"user": {
        "user_metadata": {"preferred_language": payload["context"]["requestLanguage"]},
        "app_metadata": {"plan": "free", "signup_connection": connection}}}
    assert messages(record) == [f"Allowing sign-up of {payload['user']['email']} on {connection}"]


def check_post_user_registration(record, payload):
    user, connection = payload["user"], payload["context"]["connection"]["name"]
    assert messages(record) == [
        f"New user {user['id']} <{user['email']}> registered on {connection}"]


def check_post_change_password(record, payload):
    user, connection = payload["user"], payload["context"]["connection"]["name"]
    assert messages(record) == [f"Password changed for user {user['id']} <{user['email']}> on "
                                f"{connection} at {user['last_password_reset']}"]


@dataclass(frozen=True)
class Case:
    """How one sample is set up, run and checked.

    `deliveries` maps each message type the hook supports to the check of the one request
    its provider receives (send-phone-message); `check` checks a record of any other trigger.
    `failures` maps each failure path to the secrets it overrides (wrong credentials) and
    the text its SendPhoneMessageError must contain; "invalid-number" sends INVALID_NUMBER,
    "provider-down" answers 503, "provider-stopped" refuses the connection.
    """

    provider: str | None = None
    deliveries: dict[str, Callable] | None = None
    message_id: str = ""
    failures: dict[str, tuple[dict, str]] | None = None
    check: Callable | None = None


TWILIO_FAILURES = {
    "wrong-credentials": ({"TWILIO_AUTH_TOKEN": "f0e1d2c3b4a5968778695a4b3c2d1e0f"},
                          "Twilio error 20003: Authenticate"),
    "invalid-number": ({}, f"Twilio error 21211: The 'To' number {INVALID_NUMBER} is not a "
                           "valid phone number."),
    "provider-down": ({}, "Twilio answered HTTP 503 without an error code"),
    "provider-stopped": ({}, "Twilio API unreachable (connection failed)"),
}
CASES = {
    "twilio_sms": Case(
        provider="twilio", deliveries={"sms": check_twilio_message},
        message_id=r"SM[0-9a-f]{32}", failures=TWILIO_FAILURES),
    "twilio_sms_or_voice": Case(
        provider="twilio", deliveries={"sms": check_twilio_message, "voice": check_twilio_call},
        message_id=r"(SM|CA)[0-9a-f]{32}", failures=TWILIO_FAILURES),
    "twilio_verify": Case(
        provider="twilio",
        deliveries={"sms": check_twilio_verification, "voice": check_twilio_verification},
        message_id=r"VE[0-9a-f]{32}",
        failures={**TWILIO_FAILURES, "invalid-number": (
            {}, f"Twilio error 60200: Invalid parameter `To`: {INVALID_NUMBER}")}),
    "vonage_sms": Case(
        provider="vonage", deliveries={"sms": check_vonage_sms}, message_id=r"[0-9A-F]{16}",
        failures={
            "wrong-credentials": ({"VONAGE_API_SECRET": "0000wrong0000secret"},
                                  "Vonage status 4: Bad Credentials"),
            "invalid-number": ({}, "Vonage status 3: Invalid to address"),
            "provider-down": ({}, "Vonage answered HTTP 503 to the SMS request"),
            "provider-stopped": ({}, "Vonage API unreachable (connection failed)"),
        }),
    "vonage_voice": Case(
        provider="vonage", deliveries={"voice": check_vonage_call},
        message_id=r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        failures={
            # A key the application does not know signs the JWT: the stand-in answers 401.
            "wrong-credentials": ({"VONAGE_PRIVATE_KEY": ANOTHER_KEY},
                                  "Vonage error 401: Unauthorized (You did not provide "
                                  "correct credentials.)"),
            "invalid-number": ({}, "Vonage error 400: Bad Request (The request failed due "
                                   "to validation errors)"),
            "provider-down": ({}, "Vonage error 503: SERVICE UNAVAILABLE"),
            "provider-stopped": ({}, "Vonage API unreachable (connection failed)"),
        }),
    "infobip_sms": Case(
        provider="infobip", deliveries={"sms": check_infobip_sms}, message_id=r"[0-9a-f]{32}",
        failures={
            "wrong-credentials": ({"INFOBIP_API_KEY": "wrong-infobip-key-000000"},
                                  "Infobip error 401 UNAUTHORIZED: Invalid login details"),
            "invalid-number": ({}, "Infobip error 400 BAD_REQUEST: Bad request "
                                   "(messages[0].destinations[0].to invalid destination "
                                   "address)"),
            "provider-down": ({}, "Infobip error 503: Service Unavailable"),
            "provider-stopped": ({}, "Infobip API unreachable (connection failed)"),
        }),
    "credentials_exchange": Case(check=check_credentials_exchange),
    "pre_user_registration": Case(check=check_pre_user_registration),
    "post_user_registration": Case(check=check_post_user_registration),
    "post_change_password": Case(check=check_post_change_password),
}
PHONE_SAMPLES = [stem for stem, case in CASES.items() if case.deliveries]


def run_params() -> list:
    """(file, message type) for every sample; a file without a case still gets a (failing) test."""
    params = []
    for path in HOOK_FILES:
        case = CASES.get(path.stem)
        modes = list(case.deliveries) if case and case.deliveries else ["sample"]
        params += [pytest.param(path, mode, id=f"{path.stem}-{mode}") for mode in modes]
    return params


def failure_params(failures) -> list:
    return [pytest.param(stem, mode, failure, id=f"{stem}-{mode}-{failure}")
            for stem in PHONE_SAMPLES for mode in CASES[stem].deliveries for failure in failures]


def messages(record) -> list[str]:
    """What the hook printed (not the `http` lines of its requests, nor an `error` line)."""
    return [line["message"] for line in record["logs"] if line["stream"] == "stdout"]


def strings_in(data):
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from strings_in(value)
    elif isinstance(data, list):
        for item in data:
            yield from strings_in(item)


def assert_no_secret(data, secrets: dict[str, str]) -> None:
    """No secret value, nor any line of a multi-line one (a PEM key), appears anywhere."""
    texts = list(strings_in(data))
    for name, value in secrets.items():
        pieces = [value] + [line for line in value.splitlines()
                            if len(line) >= 16 and "-----" not in line]
        for piece in filter(None, pieces):
            leaked = [text for text in texts if piece in text]
            assert not leaked, f"secret {name} leaked in {leaked}"


def assert_record(record, hook_id, trigger_id, source="test", status="success"):
    assert RECORD_FIELDS <= set(record), record
    assert (record["hook_id"], record["trigger_id"], record["source"], record["status"]) == (
        hook_id, trigger_id, source, status), (record["error"], record["logs"])
    assert record["started_at"] and record["ended_at"]
    streams = [line["stream"] for line in record["logs"]]
    # What the hook printed (and the requests it sent); a failed run ends with its error.
    assert set(streams) <= {"stdout", "http", "error"}, record["logs"]
    assert (status != "success") == ("error" in streams) and streams.count("error") <= 1
    if status != "success":
        assert streams[-1] == "error" and record["error"]["name"] in record["logs"][-1]["message"]
    for timing in TIMINGS:
        assert isinstance(record["stats"][timing], (int, float)) and record["stats"][timing] >= 0
    if status == "success":
        assert record["error"] is None
    else:
        assert record["result"] is None


# --- the shared server, stand-ins and the hooks' secrets ---

@pytest.fixture(scope="module")
def vonage_keys():
    """(private, public) of the Vonage application, and a private key Vonage does not know."""
    private, public = rsa_key_pair()
    return private, public, rsa_key_pair()[0]


@pytest.fixture(scope="module")
def providers(vonage_keys):
    applications = {vonage_standin.TEST_APPLICATION_ID: vonage_keys[1]}
    standins = {"twilio": StandIn(twilio_standin.create_app()),
                "vonage": StandIn(vonage_standin.create_app(applications=applications)),
                "infobip": StandIn(infobip_standin.create_app())}
    yield standins
    for standin in standins.values():
        standin.stop()


def host_map(standins: dict[str, StandIn]) -> str:
    """HOOKENGINE_HOST_MAP sending each provider's hosts to its stand-in (those given)."""
    return ",".join(f"{host}={standins[provider].url}"
                    for provider, hosts in PROVIDER_HOSTS.items() if provider in standins
                    for host in hosts)


@pytest.fixture(scope="module")
def server(tmp_path_factory, providers):
    server = ServerProcess(tmp_path_factory.mktemp("samples") / "data",
                           HOST_MAP=host_map(providers), TIMEOUT_SECONDS=10).start()
    yield server
    if server.process.poll() is None:
        assert server.terminate() == 0
    server.session.close()


@pytest.fixture(autouse=True)
def providers_up(providers):
    """Each test starts with empty request logs and every provider up."""
    for standin in providers.values():
        standin.reset()
    yield
    for standin in providers.values():
        standin.reset()


@pytest.fixture(scope="module")
def good_secrets(vonage_keys):
    """The secrets each sample declares, as the stand-ins accept them."""
    twilio = {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    return {
        "twilio_sms": {**twilio, "TWILIO_PHONE_NUMBER": TWILIO_NUMBER},
        "twilio_sms_or_voice": {**twilio, "TWILIO_PHONE_NUMBER": TWILIO_NUMBER},
        "twilio_verify": {**twilio,
                          "TWILIO_VERIFY_SERVICE_SID": twilio_standin.TEST_SERVICE_SID},
        "vonage_sms": {"VONAGE_API_KEY": vonage_standin.TEST_API_KEY,
                       "VONAGE_API_SECRET": vonage_standin.TEST_API_SECRET,
                       "VONAGE_FROM": VONAGE_NUMBER},
        "vonage_voice": {"VONAGE_APPLICATION_ID": vonage_standin.TEST_APPLICATION_ID,
                         "VONAGE_PRIVATE_KEY": vonage_keys[0], "VONAGE_FROM": VONAGE_NUMBER},
        "infobip_sms": {"INFOBIP_API_KEY": infobip_standin.TEST_API_KEY,
                        "INFOBIP_SENDER": INFOBIP_SENDER},
    }


def secrets_for(stem, good_secrets, vonage_keys, overrides=None) -> dict[str, str]:
    secrets = dict(good_secrets.get(stem, {}))
    for name, value in (overrides or {}).items():
        secrets[name] = vonage_keys[2] if value == ANOTHER_KEY else value
    return secrets


class Engine:
    """The module's server, driven as an operator would: upload, set secrets, run, execute."""

    def __init__(self, server: ServerProcess):
        self.server = server
        self.payloads = {t["id"]: t["payload"] for t in self.call("GET", "/triggers", 200)}

    def call(self, method, path, status, **kwargs):
        response = self.server.call(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code,
                                                response.text)
        return response.json() if response.content else None

    def upload(self, stem: str, secrets: dict | None, variant: str = "") -> dict:
        """Create the hook from hooks/<stem>.py unchanged; triggerId from its block."""
        path = ROOT / "hooks" / f"{stem}.py"
        hook = self.call("POST", "/hooks", 201, json={
            "name": hook_name(stem, variant), "script": path.read_text(),
            "triggerId": block_of(path)["trigger"]})
        assert hook["script"] == path.read_text()
        if secrets is not None:
            declared = block_of(path)
            assert set(declared["secrets"]) <= set(secrets) <= set(
                declared["secrets"] + declared.get("optional_secrets", []))
            if secrets:
                self.call("POST", f"/hooks/{hook['id']}/secrets", 201, json=secrets)
            assert self.call("GET", f"/hooks/{hook['id']}/secrets", 200) == {
                name: "_VALUE_NOT_SHOWN_" for name in secrets}
        return hook

    def payload(self, trigger_id: str, **context) -> dict:
        """The trigger's sample payload (from GET /triggers/{id}), with context changes."""
        payload = copy.deepcopy(self.payloads[trigger_id])
        recipient = context.pop("recipient", None)
        if recipient is not None:
            payload["recipient"] = recipient
        if context:
            payload["context"].update(context)
        if trigger_id == "send-phone-message" and "code" in context:
            payload["text"] = f"Your verification code is {context['code']}"
        return payload

    def run(self, hook: dict, payload: dict) -> dict:
        record = self.call("POST", f"/hooks/{hook['id']}/run", 200, json={"payload": payload})
        assert self.call("GET", f"/executions/{record['id']}", 200) == record
        return record

    def execute(self, hook: dict, payload: dict) -> tuple[dict, dict]:
        """Enable the hook, fire its trigger; return the harness answer and the record."""
        assert self.call("PATCH", f"/hooks/{hook['id']}", 200,
                         json={"enabled": True})["enabled"] is True
        answer = self.call("POST", f"/triggers/{hook['triggerId']}/execute", 200, json=payload)
        assert set(answer) == {"status", "data", "execution_id"}, answer
        record = self.call("GET", f"/executions/{answer['execution_id']}", 200)
        return answer, record


@pytest.fixture(scope="module")
def engine(server):
    return Engine(server)


@pytest.fixture(scope="module")
def deployed(engine, good_secrets):
    """deployed(stem) -> the sample's hook with its working secrets, uploaded once."""
    hooks = {}

    def get(stem: str) -> dict:
        if stem not in hooks:
            hooks[stem] = engine.upload(stem, good_secrets.get(stem, {}))
        return hooks[stem]
    return get


# --- every sample, every message type it supports: Run button and trigger execution ---

def test_every_sample_hook_has_a_case():
    assert {path.stem for path in HOOK_FILES} == set(CASES), (
        "each file in hooks/ needs a Case in tests/test_samples_e2e.py")


@pytest.mark.parametrize("path, mode", run_params())
def test_sample_runs_unchanged_and_delivers(path, mode, engine, deployed, providers,
                                            good_secrets):
    case = CASES.get(path.stem)
    assert case is not None, f"hooks/{path.name} has no case in CASES: add one"
    trigger_id = block_of(path)["trigger"]
    hook = deployed(path.stem)
    assert (hook["name"], hook["triggerId"]) == (hook_name(path.stem), trigger_id)
    secrets = good_secrets.get(path.stem, {})

    if case.deliveries is None:  # another trigger: its sample payload, its response
        payload = engine.payload(trigger_id)
        record = engine.run(hook, payload)
        assert_record(record, hook["id"], trigger_id)
        case.check(record, payload)
        answer, executed = engine.execute(hook, payload)
        assert answer == {"status": "success", "data": record["result"],
                          "execution_id": executed["id"]}
        assert_record(executed, hook["id"], trigger_id, source="trigger")
        case.check(executed, payload)
        return

    provider, check = providers[case.provider], case.deliveries[mode]
    payload = engine.payload(trigger_id, message_type=mode, code="482913")
    record = engine.run(hook, payload)
    sent = provider.requests
    assert len(sent) == 1, (sent, record["error"])
    check(sent[0], payload, provider)
    assert_record(record, hook["id"], trigger_id)
    assert set(record["result"]) == {"MessageID"}
    assert re.fullmatch(case.message_id, record["result"]["MessageID"]), record["result"]
    assert record["payload"] == payload
    assert len(messages(record)) == 1 and record["result"]["MessageID"] in messages(record)[0]
    # Every request the hook sent is in the record, and in its log as an `http` line.
    assert len(record["http_requests"]) == len(sent) and all(
        r["status"] in (200, 201) and "error_code" not in r for r in record["http_requests"])
    assert [line["request"] for line in record["logs"] if line["stream"] == "http"] == \
        record["http_requests"]
    assert_no_secret(record, secrets)

    # The production path: the identity platform fires the trigger with the same payload.
    payload = engine.payload(trigger_id, message_type=mode, code="705164")
    before = len(provider.requests)
    answer, executed = engine.execute(hook, payload)
    assert answer["status"] == "success", answer
    assert answer["data"] == executed["result"] and re.fullmatch(
        case.message_id, answer["data"]["MessageID"])
    assert_record(executed, hook["id"], trigger_id, source="trigger")
    assert_no_secret([answer, executed], secrets)
    sent = provider.requests[before:]
    assert len(sent) == 1, sent
    check(sent[0], payload, provider)


def test_twilio_sms_from_a_messaging_service(engine, providers, good_secrets):
    """The sender is an optional secret: only the Messaging Service SID is set, no number."""
    secrets = {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
               "TWILIO_MESSAGING_SERVICE_SID": twilio_standin.TEST_MESSAGING_SERVICE_SID}
    hook = engine.upload("twilio_sms", secrets, variant="messaging-service")
    payload = engine.payload("send-phone-message", code="310775")

    record = engine.run(hook, payload)

    assert record["status"] == "success", record
    assert re.fullmatch(r"SM[0-9a-f]{32}", record["result"]["MessageID"])
    assert messages(record)[0].endswith("to ***5310, status accepted")
    [sent] = providers["twilio"].requests
    assert sent.form == {"To": RECIPIENT, "Body": payload["text"],
                         "MessagingServiceSid": twilio_standin.TEST_MESSAGING_SERVICE_SID}
    assert_no_secret(record, secrets)


def test_twilio_sms_without_a_sender_says_which_secrets_to_set(engine, providers):
    hook = engine.upload("twilio_sms", {"TWILIO_ACCOUNT_SID": TWILIO_SID,
                                        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN}, variant="no-sender")

    record = engine.run(hook, engine.payload("send-phone-message"))

    assert record["status"] == "error" and record["error"]["message"] == (
        "set the secret TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID (the sender)")
    assert providers["twilio"].requests == []


def test_vonage_sms_sends_text_outside_ascii_as_unicode(engine, deployed, providers):
    payload = engine.payload("send-phone-message", code="246810")
    payload["text"] = "Votre code de vérification : 246810"

    record = engine.run(deployed("vonage_sms"), payload)

    assert record["status"] == "success", record
    [sent] = providers["vonage"].requests
    assert (sent.form["type"], sent.form["text"]) == ("unicode", payload["text"])


def test_pre_user_registration_refuses_a_blocked_domain(engine, deployed):
    hook = deployed("pre_user_registration")
    payload = engine.payload("pre-user-registration")
    payload["user"]["email"] = "eve@Mailinator.com"
    expected = {"name": "PreUserRegistrationError",
                "message": "Denied sign-up of eve@Mailinator.com: blocked domain mailinator.com",
                "user_message": "Sign-ups with this email domain are not allowed."}

    record = engine.run(hook, payload)
    answer, executed = engine.execute(hook, payload)

    assert_record(record, hook["id"], "pre-user-registration", status="error")
    assert {k: record["error"][k] for k in expected} == expected
    assert "hook.py" in record["error"]["stack"]
    assert answer == {"status": "error", "data": expected, "execution_id": executed["id"]}
    assert_record(executed, hook["id"], "pre-user-registration", source="trigger",
                  status="error")


def test_execute_without_an_enabled_hook_is_404(engine, deployed):
    hook = deployed("post_change_password")
    engine.call("PATCH", f"/hooks/{hook['id']}", 200, json={"enabled": False})
    try:
        answer = engine.call("POST", "/triggers/post-change-password/execute", 404,
                             json=engine.payload("post-change-password"))
    finally:
        engine.call("PATCH", f"/hooks/{hook['id']}", 200, json={"enabled": True})
    assert answer["errorCode"] == "no_enabled_hook"
    assert answer["message"].startswith(
        "No hook is enabled for trigger 'post-change-password'")  # README's troubleshooting


# --- failure paths of each provider sample ---

@pytest.mark.parametrize("stem, mode, failure", failure_params(
    ("wrong-credentials", "invalid-number", "provider-down")))
def test_provider_failure_is_a_send_phone_message_error(stem, mode, failure, engine, providers,
                                                        good_secrets, vonage_keys):
    case = CASES[stem]
    overrides, expected = case.failures[failure]
    secrets = secrets_for(stem, good_secrets, vonage_keys, overrides)
    hook = engine.upload(stem, secrets, variant=f"{mode}-{failure}")
    recipient = INVALID_NUMBER if failure == "invalid-number" else RECIPIENT
    payload = engine.payload("send-phone-message", message_type=mode, code="135790",
                             recipient=recipient)
    provider = providers[case.provider]
    provider.down = failure == "provider-down"

    record = engine.run(hook, payload)
    answer, executed = engine.execute(hook, payload)

    for error in (record["error"], answer["data"]):
        assert error["name"] == "SendPhoneMessageError", error
        assert expected in error["message"], error
        assert error["friendly_message"].startswith("We could not")
    assert_record(record, hook["id"], "send-phone-message", status="error")
    assert answer["status"] == "error" and "stack" not in answer["data"]
    assert_record(executed, hook["id"], "send-phone-message", source="trigger", status="error")
    assert_no_secret([record, answer, executed], {**good_secrets[stem], **secrets})
    # The provider itself refused: both runs reached it, and its answer is in the record.
    assert len(provider.requests) == 2, provider.requests
    for run in (record, executed):
        last = run["http_requests"][-1]
        assert last["status"] >= 400 or last.get("error_code"), last
        if failure == "invalid-number":
            assert last.get("error_code") and last.get("error_message"), last


def test_secret_the_provider_echoes_back_is_redacted(engine, providers, good_secrets):
    """Twilio quotes a bad From number in its error; the record shows its name instead."""
    bad_sender = "+0999000111"
    secrets = {**good_secrets["twilio_sms"], "TWILIO_PHONE_NUMBER": bad_sender}
    hook = engine.upload("twilio_sms", secrets, variant="bad-sender")

    record = engine.run(hook, engine.payload("send-phone-message"))

    assert record["status"] == "error"
    assert record["error"]["message"] == (
        "Twilio error 21212: The 'From' number [secret:TWILIO_PHONE_NUMBER] is not a valid "
        "phone number, shortcode, or alphanumeric sender ID.")
    assert_no_secret(record, secrets)
    assert providers["twilio"].requests[0].form["From"] == bad_sender  # it did go out


@pytest.mark.parametrize("stem", PHONE_SAMPLES)
def test_sample_without_its_secrets_is_refused_before_it_runs(stem, engine, providers,
                                                              good_secrets):
    declared = block_of(ROOT / "hooks" / f"{stem}.py")["secrets"]
    hook = engine.upload(stem, None, variant="no-secrets")
    payload = engine.payload("send-phone-message")

    refused = engine.call("POST", f"/hooks/{hook['id']}/run", 400, json={"payload": payload})
    assert refused["errorCode"] == "missing_secret"
    assert refused["message"].startswith(
        f"The hook declares secret(s) that are not set: {', '.join(declared)}.")

    # With all but the last one set, only that one is named, on both paths.
    *given, missing = declared
    engine.call("POST", f"/hooks/{hook['id']}/secrets", 201,
                json={name: good_secrets[stem][name] for name in given})
    engine.call("PATCH", f"/hooks/{hook['id']}", 200, json={"enabled": True})
    for path, body in ((f"/hooks/{hook['id']}/run", {"payload": payload}),
                       ("/triggers/send-phone-message/execute", payload)):
        refused = engine.call("POST", path, 400, json=body)
        assert refused["message"].startswith(
            f"The hook declares secret(s) that are not set: {missing}.")
        assert_no_secret(refused, good_secrets[stem])
    assert engine.call("GET", f"/hooks/{hook['id']}/executions", 200) == []
    assert providers[CASES[stem].provider].requests == []


def cli_run(path: Path, secrets: dict, payload: dict, workdir: Path, mapped: str):
    """`hookengine run FILE --secrets FILE.env --payload @payload.json`, in its own process."""
    secrets_file, payload_file = workdir / "secrets.env", workdir / "payload.json"
    secrets_file.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in secrets.items()))
    payload_file.write_text(json.dumps(payload))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKENGINE_")}
    env["HOOKENGINE_HOST_MAP"] = mapped
    command = Path(sys.executable).with_name("hookengine")
    done = subprocess.run([str(command), "run", str(path), "--secrets", str(secrets_file),
                           "--payload", f"@{payload_file}"],
                          env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
    try:
        record = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no record on stdout: {done.stdout!r} {done.stderr!r}") from None
    return done.returncode, record, done.stderr


def test_cli_runs_twilio_sms_locally(engine, providers, good_secrets, tmp_path):
    secrets = good_secrets["twilio_sms"]
    payload = engine.payload("send-phone-message", code="864209")

    code, record, stderr = cli_run(ROOT / "hooks" / "twilio_sms.py", secrets, payload, tmp_path,
                                   host_map(providers))

    assert code == 0, (record, stderr)
    assert (record["status"], record["source"], record["error"]) == ("success", "local", None)
    assert re.fullmatch(r"SM[0-9a-f]{32}", record["result"]["MessageID"])
    assert set(record["stats"]) >= set(TIMINGS)
    assert_no_secret([record, stderr], secrets)
    [sent] = providers["twilio"].requests
    check_twilio_message(sent, payload, providers["twilio"])


@pytest.mark.parametrize("stem, mode, failure", failure_params(("provider-stopped",)))
def test_stopped_provider_is_a_send_phone_message_error(stem, mode, failure, engine, providers,
                                                        good_secrets, tmp_path):
    """The provider's host maps to a stand-in that was stopped: the connection is refused.

    The shared server's host map is fixed, so this runs through the CLI (same sandbox, same
    record) with a second, stopped stand-in; the module's stand-ins stay up.
    """
    case = CASES[stem]
    stopped = StandIn(infobip_standin.create_app())  # any app: only its closed port matters
    stopped.stop()
    mapped = host_map({**providers, case.provider: stopped})
    secrets = good_secrets[stem]
    payload = engine.payload("send-phone-message", message_type=mode, code="975310")

    code, record, stderr = cli_run(ROOT / "hooks" / f"{stem}.py", secrets, payload, tmp_path,
                                   mapped)

    assert code == 1, (record, stderr)
    assert record["status"] == "error", record
    assert record["error"]["name"] == "SendPhoneMessageError"
    assert record["error"]["message"] == case.failures[failure][1]
    assert_no_secret([record, stderr], secrets)
    assert providers[case.provider].requests == []


def test_infobip_host_missing_from_the_egress_allowlist_is_named(engine, providers,
                                                                 good_secrets, tmp_path):
    """Infobip is reached with plain `requests`, so its host is not allowed by default."""
    mapped = host_map({k: v for k, v in providers.items() if k != "infobip"})
    assert "infobip" not in mapped

    code, record, _ = cli_run(ROOT / "hooks" / "infobip_sms.py", good_secrets["infobip_sms"],
                              engine.payload("send-phone-message"), tmp_path, mapped)

    assert (code, record["status"], record["error"]["name"]) == (
        1, "error", "SendPhoneMessageError")
    assert record["error"]["message"] == (
        "Infobip API unreachable: connection to 'api.infobip.com' refused: not on this hook's "
        "egress allowlist (add the host to HOOKENGINE_EGRESS_ALLOW)")
    assert providers["infobip"].requests == []
