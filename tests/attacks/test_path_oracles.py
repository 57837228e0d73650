"""APIs that take a file path where a hook would pass data: a CA bundle (`verify=`), client
certificates (`cert=`, urllib3's `ca_certs`/`cert_file`/`key_file`), a private key that vonage
reads when the string looks like a file name, the directories zoneinfo reads from.

Each turned the SDKs into an oracle on the host's files (exists? parses as PEM? signs?), and
`cert=` into a way to present the host's client certificate. The language layer refuses the
path itself (policy.PATH_ARGUMENTS), whichever entry point it is passed to, with an error
naming the parameter; the kernel jail, separately, leaves no host file to find."""

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hookengine.sandbox.egress import EgressPolicy
from attacklib import hook, refused

APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
MARKER = "PATH-ORACLE-MARKER-3c4d"
URL = "https://api.twilio.com/2010-04-01/Accounts.json"


@pytest.fixture
def host_file(world_dir):
    """A world-readable PEM-looking file on the host: what the oracles would find."""
    path = world_dir / "host-cert.pem"
    path.write_text(f"-----BEGIN CERTIFICATE-----\n{MARKER}\n-----END CERTIFICATE-----\n")
    os.chmod(path, 0o644)
    return str(path)


SESSION = "s = requests.Session()\nprep = requests.Request('GET', URL).prepare()"
ADAPTER = "adapter = requests.adapters.HTTPAdapter()\npm = adapter.poolmanager"

REQUESTS_CALLS = {
    "requests.get verify": ("requests.get(URL, verify=P)", "requests.api.get", "verify"),
    "requests.post cert": ("requests.post(URL, cert=P)", "requests.api.post", "cert"),
    "requests.request cert pair": ("requests.request('GET', URL, cert=(P, P))",
                                   "requests.api.request", "cert"),
    "keywords unpacked": ("requests.get(URL, **{'verify': P})", "requests.api.get", "verify"),
    "session.get": ("s.get(URL, verify=P)", "Session.get", "verify"),
    "session.request positional": (
        "s.request('GET', URL, None, None, None, None, None, None, None, True, None, None, "
        "False, P)", "Session.request", "verify"),
    "session.send": ("s.send(prep, verify=P)", "Session.send", "verify"),
    "merge_environment_settings": ("s.merge_environment_settings(URL, {}, None, P, None)",
                                   "Session.merge_environment_settings", "verify"),
    "unbound Session.get": ("requests.Session.get(s, URL, cert=P)", "Session.get", "cert"),
    "adapter.send": ("requests.adapters.HTTPAdapter().send(prep, verify=P)",
                     "HTTPAdapter.send", "verify"),
    "adapter.cert_verify": ("requests.adapters.HTTPAdapter().cert_verify(None, URL, P, None)",
                            "HTTPAdapter.cert_verify", "verify"),
}


@pytest.mark.parametrize("name", sorted(REQUESTS_CALLS))
def test_requests_refuses_tls_file_paths(run, host_file, name):
    call, where, param = REQUESTS_CALLS[name]
    result = run(hook(f"{SESSION}\nreturn repr({call})",
                      f"import requests, requests.adapters\nURL = {URL!r}\nP = {host_file!r}"))
    refused(result, "AccessDenied", where, f"{param}=", "is refused")
    assert MARKER not in repr(result.error)


URLLIB3_CALLS = {
    "init_poolmanager": ("adapter.init_poolmanager(1, 1, ca_certs=P)",
                         "HTTPAdapter.init_poolmanager", "ca_certs="),
    "proxy_manager_for": ("adapter.proxy_manager_for('http://127.0.0.1:9', cert_file=P)",
                          "HTTPAdapter.proxy_manager_for", "cert_file="),
    "PoolManager": ("requests.adapters.PoolManager(key_file=P)", "PoolManager", "key_file="),
    "proxy_from_url": ("requests.adapters.proxy_from_url('http://127.0.0.1:9', ca_certs=P)",
                       "proxy_from_url", "ca_certs="),
    "connection_from_url": ("pm.connection_from_url(URL, pool_kwargs={'ca_certs': P})",
                            "PoolManager.connection_from_url", "pool_kwargs="),
    "connection_from_host positional": (
        "pm.connection_from_host('api.twilio.com', 443, 'https', {'cert_file': P})",
        "PoolManager.connection_from_host", "pool_kwargs="),
    "pool class": ("pm.pool_classes_by_scheme['https']('api.twilio.com', ca_certs=P)",
                   "HTTPSConnectionPool", "ca_certs="),
    "connection class": ("pm.connection_from_host('api.twilio.com', 443, 'https')"
                         ".ConnectionCls('api.twilio.com', ca_cert_dir=P)",
                         "HTTPSConnection", "ca_cert_dir="),
    "settings dict": ("pm.connection_pool_kw.update({'cert_file': P})",
                      "connection_pool_kw", "TLS certificate"),
    "pool settings dict": ("pm.connection_from_host('api.twilio.com', 443, 'https')"
                           ".conn_kw.update({'ca_certs': P})", "conn_kw", "TLS certificate"),
}


@pytest.mark.parametrize("name", sorted(URLLIB3_CALLS))
def test_urllib3_under_requests_refuses_tls_file_paths(run, host_file, name):
    call, where, fragment = URLLIB3_CALLS[name]
    result = run(hook(f"{ADAPTER}\nreturn repr({call})",
                      f"import requests.adapters\nURL = {URL!r}\nP = {host_file!r}"))
    refused(result, "AccessDenied", where, fragment)
    assert MARKER not in repr(result.error)


def test_requests_without_paths_passes_the_check(run):
    result = run(hook('''
s = requests.Session()
settings = [s.merge_environment_settings(URL, {}, None, flag, None)["verify"]
            for flag in [True, False]]
adapter = requests.adapters.HTTPAdapter(max_retries=requests.adapters.Retry(total=1))
pool = adapter.poolmanager.connection_from_host("api.twilio.com", 443, "https",
                                                {"maxsize": 2})
return [settings, pool.host, requests.Request("GET", URL).prepare().url]
''', f"import requests, requests.adapters\nURL = {URL!r}"))
    assert result.status == "success", result.error
    assert result.result == [[True, False], "api.twilio.com", URL]


@pytest.fixture(scope="module")
def private_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.mark.parametrize("call, where", [
    ("Auth(application_id=APP, private_key=P)", "vonage_http_client.auth.Auth"),
    ("Auth(None, None, APP, P)", "vonage_http_client.auth.Auth"),
    ("vonage.Auth(application_id=APP, private_key=P + '\\n-----BEGIN x.pem')",
     "vonage_http_client.auth.Auth"),
    ("vonage_http_client.auth.JwtClient(APP, P)", "vonage_jwt.jwt.JwtClient"),
])
def test_vonage_private_key_paths_are_refused(run, host_file, call, where):
    result = run(hook(f"return repr({call})",
                      f"import vonage, vonage_http_client.auth\nfrom vonage import Auth\n"
                      f"APP = {APPLICATION_ID!r}\nP = {host_file!r}"))
    refused(result, "AccessDenied", where, "private_key=", "PEM text")
    assert MARKER not in repr(result.error)


def test_vonage_private_key_as_pem_text_still_signs(run, private_key_pem):
    result = run(hook('''
auth = Auth(application_id=APP, private_key=context.webtask.secrets.KEY)
return auth.generate_application_jwt().decode()[:3]
''', f"from vonage import Auth\nAPP = {APPLICATION_ID!r}"), secrets={"KEY": private_key_pem})
    assert result.status == "success", result.error
    assert result.result == "eyJ"


def test_zoneinfo_reads_only_its_own_directories(run, host_file):
    folder, name = os.path.split(host_file)
    result = run(hook(f'''
try:
    zoneinfo.ZoneInfo({host_file!r})
except ValueError as error:
    absolute = str(error)
try:
    zoneinfo.ZoneInfo("../../../../.." + {host_file!r})
except ValueError as error:
    relative = str(error)
zoneinfo.reset_tzpath([{folder!r}])
return zoneinfo.ZoneInfo({name!r})
''', "import zoneinfo"))
    refused(result, "AccessDenied", "zoneinfo.reset_tzpath is refused")
    assert MARKER not in repr(result.error)


@pytest.mark.parametrize("call", ["adapter.send(prep, verify=P)",
                                  "adapter.send(prep, False, None, P)"])
def test_a_host_map_keeps_the_adapter_send_check(run, host_file, call):
    """Was a hole: with HOOKENGINE_HOST_MAP set, HTTPAdapter.send is the egress layer's
    replacement, which the table did not name, so verify= went unchecked."""
    egress = EgressPolicy(("api.twilio.com",), (),
                          {"api.twilio.com": "http://127.0.0.1:9"})
    result = run(hook(f"{SESSION}\nadapter = requests.adapters.HTTPAdapter()\n"
                      f"return repr({call})",
                      f"import requests, requests.adapters\nURL = {URL!r}\nP = {host_file!r}"),
                 egress=egress)
    refused(result, "AccessDenied", "HTTPAdapter.send", "verify=", "is refused")
    assert MARKER not in repr(result.error)
