"""Outbound request records: the real SDKs against the stand-ins, in this process."""
import http.client
import json
import subprocess
import sys

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from vonage import Auth
from vonage_http_client.errors import HttpRequestError
from vonage_sms import SmsError, SmsMessage
from vonage_voice import CreateCallRequest, Talk

from hookengine.sandbox import outbound, policy
from standins import StandIn
from standins import infobip as infobip_standin
from standins import twilio as twilio_standin
from standins import vonage as vonage_standin
# The stand-in fixtures and SDK plumbing of test_standins, shared rather than copied (the
# Twilio stand-in fixture is in conftest).
from test_standins import (FROM, TO, infobip, twilio_client,  # noqa: F401
                           vonage, vonage_client, vonage_keys)

INFOBIP_PATH = "/sms/2/text/advanced"


@pytest.fixture
def records():
    """Install the recorder with a list as its sink; afterwards records go nowhere."""
    got = []
    outbound.install(got.append)
    yield got
    outbound.install(lambda record: None)


def infobip_send(infobip, to, **kwargs):
    headers = {"Authorization": "App " + infobip_standin.TEST_API_KEY}
    body = {"messages": [{"destinations": [{"to": to}], "text": "Your code is 123456"}]}
    return requests.post(infobip.url + INFOBIP_PATH, json=body, headers=headers, timeout=5,
                         **kwargs)


# --- the SDKs, through requests and urllib3 ---

def test_twilio_error_is_recorded_with_its_code_under_the_mapped_host(twilio, twilio_client):
    got = []
    outbound.install(got.append, host_map={"api.twilio.com": twilio.url})
    try:
        with pytest.raises(TwilioRestException):
            twilio_client.messages.create(to="555", from_=FROM, body="Your code is 123456")
    finally:
        outbound.install(lambda record: None)

    [record] = got
    path = "/2010-04-01/Accounts/%s/Messages.json" % twilio_standin.TEST_ACCOUNT_SID
    assert {k: v for k, v in record.items() if k != "duration_ms"} == {
        "method": "POST", "host": "api.twilio.com", "path": path, "status": 400,
        "error_code": 21211,
        "error_message": "The 'To' number 555 is not a valid phone number."}
    assert isinstance(record["duration_ms"], float)
    line = outbound.describe(record)
    assert line.startswith(f"POST api.twilio.com{path} → 400 Twilio 21211: The 'To' number 555")
    assert line.endswith(" ms)")


def test_twilio_success_has_no_error_fields(records, twilio, twilio_client):
    twilio_client.messages.create(to=TO, from_=FROM, body="Your code is 123456")

    [record] = records
    assert record["status"] == 201
    assert "error_code" not in record and "error_message" not in record and "error" not in record
    assert record["host"] == twilio.url.split("//")[1]  # no host map: the host reached


def test_vonage_sms_error_in_a_200_answer_is_recorded(records, vonage):
    auth = Auth(api_key=vonage_standin.TEST_API_KEY, api_secret=vonage_standin.TEST_API_SECRET)

    with pytest.raises(SmsError):
        vonage_client(vonage, auth).sms.send(SmsMessage(to="12", from_="Acme", text="hi"))

    [record] = records
    assert (record["method"], record["path"], record["status"]) == ("POST", "/sms/json", 200)
    assert (record["error_code"], record["error_message"]) == ("3", "Invalid to address")


def test_vonage_voice_problem_is_recorded(records, vonage, vonage_keys):
    auth = Auth(application_id=vonage_standin.TEST_APPLICATION_ID, private_key=vonage_keys[0])
    call = CreateCallRequest(to=[{"type": "phone", "number": "12"}],
                             from_={"type": "phone", "number": "447700900001"},
                             ncco=[Talk(text="Your code is 1 2 3")])

    with pytest.raises(HttpRequestError):
        vonage_client(vonage, auth).voice.create_call(call)

    [record] = records
    assert (record["path"], record["status"], record["error_code"]) == (
        "/v1/calls", 400, "validation")
    assert record["error_message"] == "The request failed due to validation errors"


def test_infobip_error_is_recorded_without_query_or_body(records, infobip):
    answer = requests.post(infobip.url + INFOBIP_PATH + "?api_key=QUERYSECRET",
                           json={"messages": [{"text": "BODYSECRET"}]},
                           headers={"Authorization": "App HEADERSECRET"}, timeout=5)

    assert answer.status_code == 401
    [record] = records
    assert (record["path"], record["error_code"], record["error_message"]) == (
        INFOBIP_PATH, "UNAUTHORIZED", "Invalid login details")
    text = json.dumps(records) + outbound.describe(record)
    assert "SECRET" not in text and "?" not in text


def test_each_request_is_recorded_once(records, infobip):
    with requests.Session() as session:
        for _ in range(3):
            session.get(infobip.url + "/nowhere", timeout=5)

    assert [(r["method"], r["path"], r["status"], r["error_code"]) for r in records] == [
        ("GET", "/nowhere", 404, "NOT_FOUND")] * 3


def test_install_twice_records_once(records, infobip):
    outbound.install(records.append)

    infobip_send(infobip, TO)

    assert len(records) == 1


# --- streams, failures and faults ---

def test_stream_is_left_to_the_caller(records, infobip):
    answer = infobip_send(infobip, "12", stream=True)

    assert records == []  # nothing was read: no record yet, nothing read ahead
    body = answer.raw.read()
    assert json.loads(body)["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"
    [record] = records
    assert (record["status"], record["error_code"]) == (400, "BAD_REQUEST")
    answer.close()
    assert len(records) == 1


def test_unread_stream_is_recorded_when_closed(records, infobip):
    answer = infobip_send(infobip, "12", stream=True)

    answer.close()

    [record] = records
    assert record["status"] == 400 and "error_code" not in record


def test_flush_records_an_answer_still_unread(records, infobip):
    answer = infobip_send(infobip, "12", stream=True)

    outbound.flush()

    assert [r["status"] for r in records] == [400]
    answer.close()
    assert len(records) == 1


def test_connection_refused_is_recorded_without_status(records):
    standin = StandIn(infobip_standin.create_app())
    standin.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(standin.url + "/x?token=QUERYSECRET", timeout=5)

    [record] = records
    assert (record["method"], record["path"], record["status"]) == ("GET", "/x", None)
    assert record["error"].startswith("ConnectionRefusedError: ")
    assert "QUERYSECRET" not in json.dumps(record)
    assert " → refused: " in outbound.describe(record)


def test_a_failing_emit_never_fails_the_request(infobip):
    def emit(record):
        raise RuntimeError("sink is down")

    outbound.install(emit)
    try:
        answer = infobip_send(infobip, TO)
    finally:
        outbound.install(lambda record: None)

    assert answer.status_code == 200


def test_http_client_outside_a_pool_is_recorded(records, infobip):
    host, port = infobip.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/nowhere?key=QUERYSECRET")
        conn.getresponse().read()
    finally:
        conn.close()

    [record] = records
    assert (record["method"], record["path"], record["status"]) == ("GET", "/nowhere", 404)


def test_http_client_refused_outside_a_pool_is_recorded(records):
    standin = StandIn(infobip_standin.create_app())
    standin.stop()
    host, port = standin.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)

    with pytest.raises(ConnectionRefusedError):
        conn.request("POST", "/sms?key=QUERYSECRET", body=b"BODYSECRET")

    [record] = records
    assert (record["method"], record["path"], record["status"]) == ("POST", "/sms", None)
    assert record["error"].startswith("ConnectionRefusedError")


# --- the hook's side: what the wrappers expose ---

def test_wrappers_add_no_reachable_attribute_and_no_policy_entry(records):
    import urllib3

    patched = {
        "urllib3.connectionpool.HTTPConnectionPool._make_request":
            urllib3.connectionpool.HTTPConnectionPool._make_request,
        **{f"urllib3.response.HTTPResponse.{name}": getattr(urllib3.response.HTTPResponse, name)
           for name in ("read", "read1", "read_chunked", "close")},
        "http.client.HTTPConnection.putrequest": http.client.HTTPConnection.putrequest,
        "http.client.HTTPConnection.getresponse": http.client.HTTPConnection.getresponse,
        "http.client.HTTPConnection.endheaders": http.client.HTTPConnection.endheaders,
    }
    for name, function in patched.items():
        assert function.__module__ == "hookengine.sandbox.outbound", name
        assert not hasattr(function, "__wrapped__"), name
        assert not [a for a in dir(function) if not a.startswith("_")], name
        # policy checks these tables by function identity; a wrapper of one would bypass it
        assert name not in policy.PATH_ARGUMENTS and name not in policy.SIDE_EFFECT_HELPERS


# --- the table and the one-line form ---

@pytest.mark.parametrize("status, body, expected", [
    (400, {"code": 21211, "message": "bad To", "more_info": "https://x", "status": 400},
     (21211, "bad To")),
    (200, {"message-count": "1", "messages": [{"status": "0"}, {"status": "4",
                                                             "error-text": "Bad Credentials"}]},
     ("4", "Bad Credentials")),
    (200, {"message-count": "1", "messages": [{"status": "0", "message-id": "X"}]}, None),
    (422, {"type": "https://developer.vonage.com/api-errors/messages#1150",
           "title": "Invalid params", "detail": "The value of `to` is invalid"},
     ("1150", "The value of `to` is invalid")),
    (400, {"requestError": {"serviceException": {"messageId": "BAD_REQUEST",
                                                 "text": "Bad request"}}},
     ("BAD_REQUEST", "Bad request")),
    (400, {"statusCode": 400, "error": "Bad Request", "message": "Payload invalid",
           "errorCode": "invalid_body"}, ("invalid_body", "Payload invalid")),
    (400, {"error": "invalid_grant", "error_description": "Wrong code"},
     ("invalid_grant", "Wrong code")),
    (500, {"error": {"code": 13, "message": "internal"}}, (13, "internal")),
    (403, {"code": "forbidden", "message": "no"}, ("forbidden", "no")),
    (200, {"code": "ok", "message": "sent"}, None),  # generic shapes only in 4xx and 5xx
    (400, ["not", "an", "object"], None),
])
def test_provider_error_table(status, body, expected):
    assert outbound.provider_error(status, "application/json", json.dumps(body).encode()) == (
        expected)


def test_provider_error_reads_only_small_json():
    body = json.dumps({"code": 1, "message": "m", "pad": "x" * outbound.BODY_LIMIT}).encode()

    assert outbound.provider_error(400, "application/json", body) is None
    assert outbound.provider_error(400, "text/html", b'{"code": 1, "message": "m"}') is None


def test_describe_failures_and_answers():
    refused = {"method": "GET", "host": "example.com", "path": "/", "status": None,
               "duration_ms": 1.2, "error": "EgressDenied: connection to 'example.com' refused"}
    timeout = dict(refused, error="TimeoutError: timed out")
    plain = {"method": "POST", "host": "rest.nexmo.com", "path": "/sms/json", "status": 200,
             "duration_ms": 40.4, "error_code": "3", "error_message": "Invalid to address"}

    assert outbound.describe(refused) == (
        "GET example.com/ → refused: connection to 'example.com' refused (1 ms)")
    assert outbound.describe(timeout) == (
        "GET example.com/ → failed: TimeoutError: timed out (1 ms)")
    assert outbound.describe(plain) == (
        "POST rest.nexmo.com/sms/json → 200 Vonage 3: Invalid to address (40 ms)")


# --- as the child sets it up: the egress guard and its host map, then the recorder ---

CHILD = """
import json, sys
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from hookengine.sandbox import outbound
from hookengine.sandbox.egress import EgressGuard, EgressPolicy

sid, token, target = sys.argv[1:]
host_map = {"api.twilio.com": target}
EgressGuard(EgressPolicy(("*.twilio.com",), (), host_map)).install()
outbound.install(lambda record: print(json.dumps(record)), host_map)
try:
    Client(sid, token).messages.create(to="555", from_="+15017122661", body="hi")
except TwilioRestException:
    pass
try:
    requests.get("https://example.com/?key=QUERYSECRET", timeout=5)
except requests.ConnectionError:
    pass
"""


def test_in_a_child_with_the_egress_guard(twilio):
    run = subprocess.run([sys.executable, "-c", CHILD, twilio_standin.TEST_ACCOUNT_SID,
                          twilio_standin.TEST_AUTH_TOKEN, twilio.url],
                         capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    answered, refused = [json.loads(line) for line in run.stdout.splitlines()]
    assert (answered["host"], answered["status"], answered["error_code"]) == (
        "api.twilio.com", 400, 21211)
    assert (refused["host"], refused["path"], refused["status"]) == ("example.com", "/", None)
    assert refused["error"].startswith("EgressDenied: connection to 'example.com' refused")
    assert outbound.describe(refused).startswith(
        "GET example.com/ → refused: connection to 'example.com' refused")
    assert "QUERYSECRET" not in run.stdout
