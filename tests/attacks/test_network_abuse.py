"""Network egress: loopback, private and metadata addresses, hosts off the allowlist, names
that resolve inward, UDP, raw sockets; and the host map, which must let hooks reach a local
provider stand-in and nothing else on that host."""

import time

import pytest

from attacklib import hook, refused
from hookengine.sandbox.egress import EgressPolicy
from standins import StandIn
from standins import twilio as twilio_standin
from standins import vonage as vonage_standin


def fetch(url: str) -> str:
    return hook(f"return requests.get({url!r}, timeout=2).text", "import requests")


LOOPBACK_FORMS = ["127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "127.0.0.2",
                  "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "vm", "runsc"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_any_spelling_is_refused(run, listener, host):
    result = run(fetch(f"http://{host}:{listener.port}/"))
    assert result.status == "error"
    assert "refused" in result.error["message"] or result.error["name"] in (
        "InvalidURL", "LocationParseError"), result.error
    assert listener.received == []


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/", "http://[fe80::1]/",
    "http://224.0.0.1/",
])
def test_private_link_local_and_metadata_addresses_are_refused(run, url):
    refused(run(fetch(url)), "ConnectionError", "refused")


@pytest.mark.parametrize("url, fragment", [
    ("https://attacker.example.net/", "not on this hook's egress allowlist"),
    ("http://93.184.216.34/", "not on this hook's egress allowlist"),
    ("https://api.twilio.com.attacker.example.net/", "not on this hook's egress allowlist"),
    ("https://evil-twilio.com/", "not on this hook's egress allowlist"),
])
def test_hosts_off_the_allowlist_are_refused_before_any_lookup(run, url, fragment):
    refused(run(fetch(url)), "ConnectionError", fragment)


@pytest.mark.parametrize("name", ["localhost", "vm"])
def test_an_allowed_name_that_resolves_inward_is_refused(run, listener, name):
    result = run(fetch(f"http://{name}:{listener.port}/"),
                 egress=EgressPolicy(allow_hosts=(name,)))
    refused(result, "ConnectionError", "resolves only to loopback")
    assert listener.received == []


def test_raw_tcp_connect_after_an_escape_is_refused(jailed, listener):
    answer = jailed(f'''
import socket
socket.create_connection(("127.0.0.1", {listener.port}), timeout=2)
''', egress=EgressPolicy.for_hook(["twilio"], [], {}))
    assert answer.get("error") == "EgressDenied", answer
    assert listener.received == []


def test_udp_sendto_after_an_escape_is_refused(jailed, udp_listener):
    answer = jailed(f'''
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"exfiltrated", ("127.0.0.1", {udp_listener.port}))
''', egress=EgressPolicy.for_hook(["twilio"], [], {}))
    assert answer.get("error") in ("EgressDenied", "PermissionError"), answer
    assert udp_listener.received == []


# What the Python-level guard cannot stop (it lives in the hook's own process): the kernel's
# network jail does, on its own, with and without the guard installed.
@pytest.mark.parametrize("guard", [True, False])
@pytest.mark.parametrize("bypass", [
    "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))",
    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.sendmsg([b'exfiltrated'], [], 0, ('127.0.0.1', {udp}))",
    "import socket\ns = socket.socket(socket.AF_INET6)\ns.settimeout(2)\n"
    "s.connect(('::ffff:127.0.0.1', {port}))",
    "import socket\ns = socket.socket()\n"
    "s.sendto(b'GET / HTTP/1.0\\r\\n\\r\\n', 0x20000000, ('127.0.0.1', {port}))",
])
def test_raw_sockets_after_an_escape_are_refused(jailed, listener, udp_listener, bypass, guard):
    answer = jailed(bypass.format(port=listener.port, udp=udp_listener.port),
                    egress=EgressPolicy.for_hook(["twilio"], [], {}) if guard else None)
    time.sleep(0.3)
    assert answer.get("error") in ("PermissionError", "OSError", "EgressDenied"), answer
    assert listener.received == [] and udp_listener.received == []


@pytest.fixture
def twilio_provider():
    server = StandIn(twilio_standin.create_app())
    yield server
    server.stop()


@pytest.fixture
def vonage_provider():
    server = StandIn(vonage_standin.create_app())
    yield server
    server.stop()


TWILIO_HOOK = hook('''
secrets = context.webtask.secrets
client = Client(secrets.SID, secrets.TOKEN, http_client=TwilioHttpClient(timeout=5))
message = client.messages.create(to=recipient, from_="+15017122661", body=text)
print("sent " + message.sid)
return {"MessageID": message.sid, "status": message.status}
''', "from twilio.http.http_client import TwilioHttpClient\nfrom twilio.rest import Client")

VONAGE_HOOK = hook('''
secrets = context.webtask.secrets
client = Vonage(Auth(api_key=secrets.KEY, api_secret=secrets.SECRET),
                HttpClientOptions(timeout=5, max_retries=0))
response = client.sms.send(SmsMessage(to=recipient[1:], from_="Acme", text=text))
return {"MessageID": response.messages[0].message_id, "count": response.message_count}
''', "from vonage import Auth, HttpClientOptions, Vonage\nfrom vonage_sms import SmsMessage")


def test_host_map_sends_twilio_to_the_local_stand_in(run, twilio_provider):
    egress = EgressPolicy(("api.twilio.com",), (), {"api.twilio.com": twilio_provider.url})
    result = run(TWILIO_HOOK, egress=egress,
                 secrets={"SID": twilio_standin.TEST_ACCOUNT_SID,
                          "TOKEN": twilio_standin.TEST_AUTH_TOKEN})
    assert result.status == "success", result.error
    assert result.result["MessageID"].startswith("SM") and result.result["status"] == "queued"
    [request] = twilio_provider.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio_standin.TEST_ACCOUNT_SID}/Messages.json"
    assert request.auth_user == twilio_standin.TEST_ACCOUNT_SID
    assert request.form["To"] == "+15551234567"


def test_host_map_sends_vonage_https_to_the_local_stand_in(run, vonage_provider):
    egress = EgressPolicy(("rest.nexmo.com",), (), {"rest.nexmo.com": vonage_provider.url})
    result = run(VONAGE_HOOK, egress=egress,
                 secrets={"KEY": vonage_standin.TEST_API_KEY,
                          "SECRET": vonage_standin.TEST_API_SECRET})
    assert result.status == "success", result.error
    assert result.result["count"] == "1"
    [request] = vonage_provider.requests
    assert (request.method, request.path) == ("POST", "/sms/json")
    assert request.form["to"] == "15551234567"


@pytest.mark.parametrize("target", ["http://127.0.0.1:{other}/", "http://localhost:{mapped}/",
                                    "http://[::1]:{mapped}/"])
def test_host_map_opens_the_mapped_port_only(run, twilio_provider, listener, target):
    # Was a hole: a host map to 127.0.0.1:PORT allowed every port on 127.0.0.1.
    egress = EgressPolicy(("api.twilio.com",), (), {"api.twilio.com": twilio_provider.url})
    mapped = int(twilio_provider.url.rsplit(":", 1)[1])
    result = run(fetch(target.format(other=listener.port, mapped=mapped)), egress=egress)
    refused(result, "ConnectionError", "refused")
    assert listener.received == [] and twilio_provider.requests == []


def test_host_map_target_itself_is_reachable_by_plain_requests(run, twilio_provider):
    egress = EgressPolicy(("api.twilio.com",), (), {"api.twilio.com": twilio_provider.url})
    result = run(fetch(twilio_provider.url + "/nowhere"), egress=egress)
    assert result.status == "success", result.error
    assert len(twilio_provider.requests) == 1
