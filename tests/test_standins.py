"""Drive the provider stand-ins with the real SDKs, and check the sample hooks' static shape."""
import ast
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter
from RestrictedPython import compile_restricted_exec
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import AuthenticationError, HttpRequestError
from vonage_sms import SmsError, SmsMessage
from vonage_voice import CreateCallRequest, Stream, Talk

# pytest puts tests/ on sys.path (rootdir-relative "prepend" import mode, no tests/__init__.py).
from standins import StandIn
from standins import infobip as infobip_standin
from standins import twilio as twilio_standin
from standins import vonage as vonage_standin

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "hooks"
TO, FROM = "+15558675310", "+15017122661"


# --- SDK plumbing: point the real clients at a stand-in without touching site-packages ---

class RoutingHttpClient(TwilioHttpClient):
    """Send every Twilio request to `base_url`, keeping path and query (twilio has no base URL)."""

    def __init__(self, base_url, **kwargs):
        super().__init__(timeout=5, **kwargs)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


class HttpsToHttpAdapter(HTTPAdapter):
    """Downgrade to plain HTTP: the vonage SDK always builds https:// URLs."""

    def send(self, request, *args, **kwargs):
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, *args, **kwargs)


def vonage_client(standin, auth):
    """A Vonage client whose SMS and Voice hosts are the stand-in."""
    host = urlsplit(standin.url).netloc
    options = HttpClientOptions(api_host=host, rest_host=host, timeout=5, max_retries=0)
    client = Vonage(auth, options)
    # The SDK mounts its adapter for "https://"; a longer prefix wins for the stand-in only.
    client.http_client._session.mount("https://" + host, HttpsToHttpAdapter())
    return client


def rsa_key_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def twilio_client(twilio):
    http_client = RoutingHttpClient(twilio.url)
    yield Client(twilio_standin.TEST_ACCOUNT_SID, twilio_standin.TEST_AUTH_TOKEN,
                 http_client=http_client)
    http_client.session.close()


@pytest.fixture(scope="module")
def vonage_keys():
    return rsa_key_pair()


@pytest.fixture
def vonage(vonage_keys):
    applications = {vonage_standin.TEST_APPLICATION_ID: vonage_keys[1]}
    app = vonage_standin.create_app(applications=applications)
    with StandIn(app) as standin:
        yield standin


@pytest.fixture
def infobip():
    with StandIn(infobip_standin.create_app()) as standin:
        yield standin


# --- Twilio ---

def test_twilio_message_is_created_and_recorded(twilio, twilio_client):
    message = twilio_client.messages.create(to=TO, from_=FROM, body="Your code is 123456")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.status, message.to, message.from_, message.body) == (
        "queued", TO, FROM, "Your code is 123456")
    [sent] = twilio.requests
    assert sent.method == "POST"
    assert sent.path == "/2010-04-01/Accounts/%s/Messages.json" % twilio_standin.TEST_ACCOUNT_SID
    assert sent.form == {"To": TO, "From": FROM, "Body": "Your code is 123456"}
    assert (sent.auth_scheme, sent.auth_user) == ("basic", twilio_standin.TEST_ACCOUNT_SID)


def test_twilio_message_from_messaging_service(twilio, twilio_client):
    service = twilio_standin.TEST_MESSAGING_SERVICE_SID
    message = twilio_client.messages.create(to=TO, messaging_service_sid=service, body="hi")

    assert message.messaging_service_sid == service
    assert message.from_ is None
    assert twilio.requests[0].form == {"To": TO, "MessagingServiceSid": service, "Body": "hi"}


@pytest.mark.parametrize("sid, token", [
    (twilio_standin.TEST_ACCOUNT_SID, "wrong-token"),
    ("AC" + "f" * 32, twilio_standin.TEST_AUTH_TOKEN),
])
def test_twilio_bad_credentials_are_20003(twilio, sid, token):
    client = Client(sid, token, http_client=RoutingHttpClient(twilio.url))

    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=FROM, body="hi")

    assert (raised.value.status, raised.value.code) == (401, 20003)


@pytest.mark.parametrize("params, code", [
    ({"to": "1-808-555-5555", "from_": FROM, "body": "hi"}, 21211),
    ({"to": TO, "from_": "12345", "body": "hi"}, 21212),
    ({"to": TO, "from_": FROM}, 21602),
    ({"to": TO, "body": "hi"}, 21603),
    ({"to": TO, "messaging_service_sid": "MG123", "body": "hi"}, 21701),
])
def test_twilio_invalid_message_is_refused_with_its_code(twilio_client, params, code):
    with pytest.raises(TwilioRestException) as raised:
        twilio_client.messages.create(**params)

    assert (raised.value.status, raised.value.code) == (400, code)


def test_twilio_error_body_has_twilio_shape(twilio):
    path = "/2010-04-01/Accounts/%s/Messages.json" % twilio_standin.TEST_ACCOUNT_SID
    auth = (twilio_standin.TEST_ACCOUNT_SID, twilio_standin.TEST_AUTH_TOKEN)

    answer = requests.post(twilio.url + path, data={"To": "555", "From": FROM, "Body": "x"},
                           auth=auth, timeout=5)

    assert answer.status_code == 400
    assert answer.json() == {
        "code": 21211, "message": "The 'To' number 555 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}


def test_twilio_unknown_path_and_malformed_account_are_20404(twilio):
    auth = (twilio_standin.TEST_ACCOUNT_SID, twilio_standin.TEST_AUTH_TOKEN)

    for path in ("/2010-04-01/Nothing.json", "/2010-04-01/Accounts/AC123/Messages.json"):
        answer = requests.post(twilio.url + path, auth=auth, timeout=5)
        assert (answer.status_code, answer.json()["code"]) == (404, 20404)


def test_twilio_call_reads_twiml(twilio, twilio_client):
    twiml = VoiceResponse()
    twiml.say("Your code is 1, 2, 3, 4, 5, 6.")

    call = twilio_client.calls.create(to=TO, from_=FROM, twiml=str(twiml))

    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued"
    sent = twilio.requests[0]
    assert sent.path.endswith("/Calls.json")
    assert "<Say>Your code is 1, 2, 3, 4, 5, 6.</Say>" in sent.form["Twiml"]


@pytest.mark.parametrize("params, code", [
    ({"to": TO, "from_": "", "twiml": "<Response/>"}, 21213),
    ({"to": TO, "from_": FROM}, 21205),
    ({"to": TO, "from_": FROM, "twiml": "<Say>no response element"}, 12100),
    ({"to": "12", "from_": FROM, "twiml": "<Response/>"}, 21211),
])
def test_twilio_invalid_call_is_refused(twilio_client, params, code):
    with pytest.raises(TwilioRestException) as raised:
        twilio_client.calls.create(**params)

    assert raised.value.code == code


def test_twilio_verify_sends_custom_code_and_checks_it(twilio, twilio_client):
    service = twilio_client.verify.v2.services(twilio_standin.TEST_SERVICE_SID)

    verification = service.verifications.create(to=TO, channel="call", custom_code="123456")
    wrong = service.verification_checks.create(to=TO, code="000000")
    right = service.verification_checks.create(to=TO, code="123456")

    assert re.fullmatch(r"VE[0-9a-f]{32}", verification.sid)
    assert (verification.status, verification.channel) == ("pending", "call")
    assert (wrong.status, wrong.valid) == ("pending", False)
    assert (right.status, right.valid, right.sid) == ("approved", True, verification.sid)
    service_path = "/v2/Services/%s/Verifications" % twilio_standin.TEST_SERVICE_SID
    assert twilio.requests[0].path == service_path
    assert twilio.requests[0].form == {"To": TO, "Channel": "call", "CustomCode": "123456"}
    with pytest.raises(TwilioRestException) as raised:  # an approved verification is gone
        service.verification_checks.create(to=TO, code="123456")
    assert raised.value.code == 20404


def test_twilio_verify_refuses_bad_service_and_channel(twilio_client):
    with pytest.raises(TwilioRestException) as raised:
        twilio_client.verify.v2.services("VA123").verifications.create(to=TO, channel="sms")
    assert raised.value.status == 404

    service = twilio_client.verify.v2.services(twilio_standin.TEST_SERVICE_SID)
    with pytest.raises(TwilioRestException) as raised:
        service.verifications.create(to=TO, channel="pigeon")
    assert (raised.value.status, raised.value.code) == (400, 60200)


# --- StandIn itself ---

def test_standin_down_answers_503_and_reset_restores_it(twilio, twilio_client):
    twilio.down = True
    with pytest.raises(TwilioRestException) as raised:
        twilio_client.messages.create(to=TO, from_=FROM, body="hi")
    assert raised.value.status == 503

    twilio.reset()
    assert twilio.requests == []
    assert twilio_client.messages.create(to=TO, from_=FROM, body="hi").status == "queued"


def test_stopped_standin_refuses_connections():
    standin = StandIn(infobip_standin.create_app())
    standin.stop()

    with pytest.raises(requests.ConnectionError):
        requests.post(standin.url + "/sms/2/text/advanced", json={}, timeout=5)


# --- Vonage ---

def test_vonage_sms_is_sent_with_basic_auth_and_form_body(vonage):
    auth = Auth(api_key=vonage_standin.TEST_API_KEY, api_secret=vonage_standin.TEST_API_SECRET)

    response = vonage_client(vonage, auth).sms.send(
        SmsMessage(to="447700900000", from_="Acme", text="Your code is 123456"))

    [message] = response.messages
    assert (response.message_count, message.status, message.to) == ("1", "0", "447700900000")
    assert message.message_id and message.remaining_balance and message.message_price
    [sent] = vonage.requests
    assert (sent.method, sent.path) == ("POST", "/sms/json")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", vonage_standin.TEST_API_KEY)
    assert sent.form == {"to": "447700900000", "from": "Acme", "text": "Your code is 123456"}


def test_vonage_sms_bad_credentials_is_status_4(vonage):
    auth = Auth(api_key=vonage_standin.TEST_API_KEY, api_secret="wrong-secret")

    with pytest.raises(SmsError, match="error code 4: Bad Credentials"):
        vonage_client(vonage, auth).sms.send(SmsMessage(to="447700900000", from_="Acme", text="x"))


def test_vonage_sms_number_with_plus_is_status_3(vonage):
    auth = Auth(api_key=vonage_standin.TEST_API_KEY, api_secret=vonage_standin.TEST_API_SECRET)

    message = SmsMessage(to="+447700900000", from_="Acme", text="x")

    with pytest.raises(SmsError, match="error code 3: Invalid to address"):
        vonage_client(vonage, auth).sms.send(message)


@pytest.mark.parametrize("as_json", [False, True])
def test_vonage_sms_accepts_credentials_in_the_body(vonage, as_json):
    params = {"api_key": vonage_standin.TEST_API_KEY, "api_secret": vonage_standin.TEST_API_SECRET,
              "to": "447700900000", "from": "Acme", "text": "x" * 200}
    body = {"json": params} if as_json else {"data": params}

    answer = requests.post(vonage.url + "/sms/json", timeout=5, **body)

    assert answer.status_code == 200
    assert answer.json()["message-count"] == "2"  # 200 characters take two parts
    assert [m["status"] for m in answer.json()["messages"]] == ["0", "0"]


def test_vonage_voice_call_with_application_jwt(vonage, vonage_keys):
    auth = Auth(application_id=vonage_standin.TEST_APPLICATION_ID, private_key=vonage_keys[0])
    call = CreateCallRequest(to=[{"type": "phone", "number": "447700900000"}],
                             from_={"type": "phone", "number": "447700900001"},
                             ncco=[Talk(text="Your code is 1, 2, 3.")])

    response = vonage_client(vonage, auth).voice.create_call(call)

    assert (response.status, response.direction) == ("started", "outbound")
    assert response.uuid and response.conversation_uuid.startswith("CON-")
    [sent] = vonage.requests
    assert (sent.path, sent.auth_scheme) == ("/v1/calls", "bearer")
    assert sent.json["ncco"] == [{"action": "talk", "text": "Your code is 1, 2, 3."}]
    assert sent.json["to"] == [{"type": "phone", "number": "447700900000"}]


def test_vonage_voice_refuses_jwt_signed_with_another_key(vonage):
    other_private_key = rsa_key_pair()[0]
    auth = Auth(application_id=vonage_standin.TEST_APPLICATION_ID, private_key=other_private_key)
    call = CreateCallRequest(to=[{"type": "phone", "number": "447700900000"}],
                             from_={"type": "phone", "number": "447700900001"},
                             ncco=[Talk(text="1, 2, 3")])

    with pytest.raises(AuthenticationError) as raised:
        vonage_client(vonage, auth).voice.create_call(call)

    body = raised.value.response.json()
    assert (body["title"], body["type"]) == (
        "Unauthorized", "https://developer.nexmo.com/api-errors#unauthorized")


def test_vonage_voice_refuses_ncco_without_talk(vonage, vonage_keys):
    auth = Auth(application_id=vonage_standin.TEST_APPLICATION_ID, private_key=vonage_keys[0])
    call = CreateCallRequest(to=[{"type": "phone", "number": "447700900000"}],
                             from_={"type": "phone", "number": "447700900001"},
                             ncco=[Stream(streamUrl=["https://example.com/code.mp3"])])

    with pytest.raises(HttpRequestError) as raised:
        vonage_client(vonage, auth).voice.create_call(call)

    assert raised.value.response.status_code == 400
    assert raised.value.response.json()["invalid_parameters"][0]["name"] == "ncco"


# --- Infobip ---

def infobip_send(standin, to, key=infobip_standin.TEST_API_KEY):
    body = {"messages": [{"destinations": [{"to": to}], "from": "InfoSMS", "text": "Code 123456"}]}
    return requests.post(standin.url + "/sms/2/text/advanced", json=body, timeout=5,
                         headers={"Authorization": "App " + key})


def test_infobip_sms_is_accepted_and_recorded(infobip):
    answer = infobip_send(infobip, "41793026727")

    assert answer.status_code == 200
    [message] = answer.json()["messages"]
    assert answer.json()["bulkId"] and message["messageId"]
    assert (message["to"], message["status"]["name"]) == ("41793026727", "PENDING_ACCEPTED")
    [sent] = infobip.requests
    assert (sent.path, sent.auth_scheme) == ("/sms/2/text/advanced", "app")
    assert sent.json["messages"][0]["destinations"] == [{"to": "41793026727"}]


def test_infobip_bad_key_is_401(infobip):
    answer = infobip_send(infobip, "41793026727", key="not-a-key")

    assert answer.status_code == 401
    assert answer.json() == {"requestError": {"serviceException": {
        "messageId": "UNAUTHORIZED", "text": "Invalid login details"}}}


def test_infobip_bad_number_is_400(infobip):
    answer = infobip_send(infobip, "41")

    assert answer.status_code == 400
    exception = answer.json()["requestError"]["serviceException"]
    assert exception["messageId"] == "BAD_REQUEST"
    assert "messages[0].destinations[0].to" in exception["validationErrors"]


# --- sample hooks: static shape (running them is the engine's tests' job) ---

# PEP 723's reference regular expression for inline script metadata.
PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
ENTRY_POINTS = {
    "send-phone-message": ("send_phone_message", ["recipient", "text", "context"]),
    "credentials-exchange": ("credentials_exchange", ["client", "scope", "audience", "context"]),
    "pre-user-registration": ("pre_user_registration", ["user", "context"]),
    "post-user-registration": ("post_user_registration", ["user", "context"]),
    "post-change-password": ("post_change_password", ["user", "context"]),
}
ALLOWED_STDLIB = {"json", "re", "datetime", "math", "hashlib", "hmac", "base64", "urllib.parse"}
HOOK_FILES = sorted(HOOKS.glob("*.py"))


def script_metadata(source):
    """Return the TOML of the file's `script` block, as PEP 723 reads it."""
    [block] = [m for m in PEP723.finditer(source) if m.group("type") == "script"]
    lines = block.group("content").splitlines(keepends=True)
    return tomllib.loads("".join(line[2:] if line.startswith("# ") else line[1:]
                                 for line in lines))


def imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module


def may_import(module, dependencies):
    """Mirror the engine's rule: the allowlisted stdlib, or a module of a declared dependency."""
    top = module.split(".")[0]
    names = {re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() for dep in dependencies}
    # vonage 4 is split into vonage_* distributions that the vonage package depends on.
    vonage_family = "vonage" in names and top.startswith("vonage_")
    return module in ALLOWED_STDLIB or top in names or vonage_family


def test_every_sample_hook_is_present():
    assert {path.stem for path in HOOK_FILES} >= {
        "twilio_sms", "twilio_verify", "twilio_sms_or_voice", "vonage_sms", "vonage_voice",
        "infobip_sms", "credentials_exchange", "pre_user_registration", "post_user_registration",
        "post_change_password"}


@pytest.mark.parametrize("path", HOOK_FILES, ids=lambda path: path.name)
def test_sample_hook_is_well_formed(path):
    source = path.read_text()
    tree = ast.parse(source)
    metadata = script_metadata(source)
    settings = metadata["tool"]["hookengine"]
    entry, params = ENTRY_POINTS[settings["trigger"]]

    assert ast.get_docstring(tree), "module docstring says what the hook shows"
    assert isinstance(metadata["dependencies"], list)
    assert all(isinstance(name, str) for name in settings["secrets"])
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert [arg.arg for arg in functions[entry].args.args] == params
    for module in imported_modules(tree):
        assert may_import(module, metadata["dependencies"]), module
    result = compile_restricted_exec(source, filename=str(path))
    assert result.errors == ()


def test_secrets_example_lists_every_declared_secret():
    example = (ROOT / "secrets.example.env").read_text()
    listed = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=$", example))
    tables = [script_metadata(path.read_text())["tool"]["hookengine"] for path in HOOK_FILES]
    declared = {name for table in tables
                for name in table["secrets"] + table.get("optional_secrets", [])}

    assert declared == listed
