"""The engine run from a checkout inside a 0700 directory, as root clones into its home.

The checkout (this repository's source files, no venv) is copied into a fresh `0700`
directory together with a virtualenv of its own, holding the engine's runtime dependencies
and the engine installed in editable mode, so that nothing a hook needs lies outside that
directory. Nothing is chmod-ed: the kernel jail must make what hooks read readable to them.

A Twilio stand-in speaks only TLS, with a certificate from a CA of its own; the engine's
HOOKENGINE_HOST_MAP sends api.twilio.com to it, and HOOKENGINE_CA_BUNDLE (a file inside the
0700 directory) lets hooks trust that CA. The same hook on an engine without the setting
fails with a certificate verification error in its execution record, not a crash.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import ipaddress
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serverprocess import free_port
from standins import StandIn
from standins import twilio as twilio_standin

ROOT = Path(__file__).resolve().parent.parent
SITE = Path("lib") / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the jail's read-only root needs root"),
    pytest.mark.timeout(240),
]

TWILIO_SID, TWILIO_TOKEN = twilio_standin.TEST_ACCOUNT_SID, twilio_standin.TEST_AUTH_TOKEN
TWILIO_NUMBER = "+15017122661"

# The smallest Twilio hook: no error handling, so what requests raises is the run's error.
PLAIN_TWILIO_HOOK = '''\
# /// script
# dependencies = ["twilio>=9,<10"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]
# ///
from twilio.rest import Client


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    client = Client(secrets.TWILIO_ACCOUNT_SID, secrets.TWILIO_AUTH_TOKEN)
    message = client.messages.create(to=recipient, body=text, from_=secrets.TWILIO_PHONE_NUMBER)
    print("sent " + message.sid)
    return {"MessageID": message.sid}
'''
PLAIN_SECRETS = {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                 "TWILIO_PHONE_NUMBER": TWILIO_NUMBER}
SAMPLE_SECRETS = {**PLAIN_SECRETS, "TWILIO_MESSAGING_SERVICE_SID": ""}


# --- a checkout and its virtualenv inside a 0700 directory ---

def runtime_distributions(name: str) -> dict[str, importlib.metadata.Distribution]:
    """`name` and everything it needs at run time (no extras), as installed in this venv."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key in found:
            continue
        found[key] = dist = importlib.metadata.distribution(key)
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def copy_source(checkout: Path) -> None:
    """The repository's files as they are now (tracked and untracked, not ignored): what a
    clone of this work would hold. No venv, no data directory, no caches."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted but still tracked is left out
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)


def make_venv(checkout: Path) -> Path:
    """`<checkout>/.venv`: the engine's runtime dependencies copied file by file (each
    distribution's RECORD) from this venv, and the engine itself installed editable, as
    `pip install -e` installs it (its RECORD's finder and script, pointed at the checkout).
    Copying instead of pip keeps the test off the network and under a few seconds."""
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    here_venv, new_site = Path(sys.prefix), venv / SITE
    for key, dist in runtime_distributions("hookengine").items():
        for file in dist.files or ():  # paths relative to site-packages
            source = Path(dist.locate_file(file))
            if not source.is_file() or (key == "hookengine" and source.suffix == ".pyc"):
                continue
            target = Path(os.path.normpath(new_site / file))
            if not target.is_relative_to(venv):
                continue  # a file a distribution installed outside its venv
            target.parent.mkdir(parents=True, exist_ok=True)
            if key == "hookengine" or (target.parent == venv / "bin"
                                       and source.read_bytes()[:2] == b"#!"):
                # The editable finder maps to the checkout; scripts start this venv's python
                # (a binary such as uv's is copied as it is).
                text = source.read_text()
                text = text.replace(str(here_venv), str(venv)).replace(str(ROOT), str(checkout))
                target.write_text(text)
                shutil.copymode(source, target)
            else:
                shutil.copy2(source, target)  # its mtime too: the bytecode stays valid
    return venv


@pytest.fixture(scope="module")
def home():
    """A directory nobody but root may enter, like /root or `mktemp -d`."""
    path = Path(tempfile.mkdtemp(prefix="hookengine-0700-"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def checkout(home):
    checkout = home / "hookengine"
    copy_source(checkout)
    venv = make_venv(checkout)
    # The engine and its dependencies come from inside the 0700 directory, not from here.
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c",
         "import hookengine, twilio, requests, certifi, sys; "
         "print(hookengine.__file__, twilio.__file__, certifi.where(), sys.prefix, sep='\\n')"],
        capture_output=True, text=True, timeout=60, cwd=home)
    assert probe.returncode == 0, probe.stderr
    engine, *others = map(Path, probe.stdout.split())
    assert engine.is_relative_to(checkout / "hookengine"), probe.stdout  # the editable install
    assert all(path.is_relative_to(venv) for path in others), probe.stdout
    assert os.stat(home).st_mode & 0o777 == 0o700
    return checkout


# --- a CA of the stand-in's own, and a TLS Twilio stand-in ---

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca_and_server_cert() -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) as PEM; the server certificate
    names 127.0.0.1 and localhost and is signed by the CA."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("hookengine test stand-in CA"))
        .issuer_name(_name("hookengine test stand-in CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca_cert.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@pytest.fixture(scope="module")
def tls(home):
    """The CA's PEM file (inside the 0700 directory) and the stand-in's server context."""
    ca_pem, cert_pem, key_pem = make_ca_and_server_cert()
    folder = home / "tls"
    folder.mkdir(mode=0o700)
    (folder / "ca.pem").write_bytes(ca_pem)
    (folder / "server.pem").write_bytes(cert_pem + ca_pem)
    (folder / "server.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


class SchemeRecorder:
    """WSGI middleware noting the URL scheme of every request the stand-in serves."""

    def __init__(self, app):
        self.app, self.schemes, self._lock = app, [], threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            self.schemes.append(environ["wsgi.url_scheme"])
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def twilio(tls):
    recorder = SchemeRecorder(twilio_standin.create_app())
    standin = StandIn(recorder, ssl_context=tls[1])
    standin.schemes = recorder.schemes
    assert standin.url.startswith("https://127.0.0.1:")
    # The stand-in is TLS only and its certificate checks out against its own CA, not certifi's.
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.SSLError):
            session.get(standin.url, timeout=5)
        assert session.get(standin.url, timeout=5, verify=str(tls[0])).status_code == 404
    standin.reset()
    yield standin
    standin.stop()


@pytest.fixture(autouse=True)
def twilio_reset(twilio):
    twilio.reset()
    twilio.schemes.clear()


# --- the engine, started from the 0700 checkout ---

class CheckoutServer:
    """`hookengine serve` from the checkout's own venv, with its data in the 0700 directory."""

    def __init__(self, checkout: Path, data_dir: Path, **settings):
        self.checkout, self.data_dir = checkout, data_dir
        self.bin = checkout / ".venv" / "bin" / "hookengine"
        # Nothing of this test's own interpreter or venv leaks into the engine's environment.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "HOOKENGINE_", "VIRTUAL_ENV", "PYTEST"))}
        self.env = {**env, "HOOKENGINE_DATA_DIR": str(data_dir),
                    **{f"HOOKENGINE_{k}": str(v) for k, v in settings.items()}}
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.cli('token', 'create').strip()}"
        self.log_path = data_dir / "server.log"
        self.process = None
        self._log = None

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(self.bin), *args], env=self.env, cwd=self.checkout,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> "CheckoutServer":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.bin), "serve", "--port", str(self.port)], env=self.env,
            cwd=self.checkout, stdout=subprocess.DEVNULL, stderr=self._log)
        return self

    def wait_ready(self) -> "CheckoutServer":
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            if "hookengine serving on" in self.log():
                try:
                    requests.get(f"{self.api}/openapi.json", timeout=1).close()
                    return self
                except requests.ConnectionError:
                    pass
            time.sleep(0.1)
        raise AssertionError("server did not answer within 90 s:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def layers(self) -> str:
        """The sandbox layers `serve` reports at start."""
        match = re.search(r"sandbox layers: (.*)\)$", self.log(), re.MULTILINE)
        assert match, self.log()
        return match.group(1)

    def stop(self) -> None:
        self.session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        if self._log is not None:
            self._log.close()

    def call(self, method: str, path: str, status: int, **kwargs):
        response = self.session.request(method, self.api + path, timeout=60, **kwargs)
        assert response.status_code == status, (method, path, response.status_code,
                                                response.text)
        return response.json() if response.content else None

    def upload(self, name: str, script: str, secrets: dict) -> dict:
        hook = self.call("POST", "/hooks", 201, json={
            "name": name, "script": script, "triggerId": "send-phone-message"})
        self.call("POST", f"/hooks/{hook['id']}/secrets", 201, json=secrets)
        return hook

    def run(self, hook: dict) -> tuple[dict, dict]:
        [trigger] = [t for t in self.call("GET", "/triggers", 200)
                     if t["id"] == "send-phone-message"]
        payload = trigger["payload"]
        record = self.call("POST", f"/hooks/{hook['id']}/run", 200, json={"payload": payload})
        return payload, record


@pytest.fixture(scope="module")
def servers(checkout, home, tls, twilio):
    """{"with_ca": ..., "without_ca": ...}: two engines from the same checkout, started
    together (each starts its zygotes, a few seconds), differing only in CA_BUNDLE."""
    host_map = f"api.twilio.com={twilio.url}"
    started = {}
    try:
        for name, extra in (("with_ca", {"CA_BUNDLE": tls[0]}), ("without_ca", {})):
            data_dir = home / f"data-{name}"
            started[name] = CheckoutServer(checkout, data_dir, HOST_MAP=host_map,
                                           TIMEOUT_SECONDS=20, **extra).start()
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


def assert_layers_complete(server: CheckoutServer) -> None:
    """The whole kernel jail is on, and it reports nothing hooks cannot read."""
    layers = server.layers()
    assert "unreadable_by_hooks" not in layers, layers
    assert "jail_problems" not in layers, layers
    items = dict(item.partition("=")[::2] for item in layers.split(", "))
    assert "read_only_root" in items.get("filesystem_jail", "").split(","), layers
    assert {"empty_netns", "broker"} <= set(items.get("network_jail", "").split(",")), layers
    assert "cannot read" not in server.log(), server.log()


def assert_delivered(twilio, payload) -> None:
    [sent] = twilio.requests
    assert (sent.method, sent.path) == ("POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert (sent.auth_scheme, sent.auth_user) == ("basic", TWILIO_SID)
    assert sent.form == {"To": payload["recipient"], "From": TWILIO_NUMBER,
                         "Body": payload["text"]}
    assert twilio.schemes == ["https"]


# --- the tests ---

def test_hook_reaches_tls_standin_through_host_map_with_its_own_ca(servers, twilio, home):
    server = servers["with_ca"]
    assert Path(server.data_dir).is_relative_to(home)
    assert_layers_complete(server)

    hook = server.upload("plain-twilio", PLAIN_TWILIO_HOOK, PLAIN_SECRETS)
    payload, record = server.run(hook)
    assert (record["status"], record["error"]) == ("success", None), record
    assert re.fullmatch(r"SM[0-9a-f]{32}", record["result"]["MessageID"]), record
    assert [line["message"] for line in record["logs"] if line["stream"] == "stdout"] == [
        "sent " + record["result"]["MessageID"]]
    [request] = record["http_requests"]  # over TLS, through the broker, to the stand-in
    assert (request["method"], request["host"], request["status"]) == (
        "POST", "api.twilio.com", 201)
    assert_delivered(twilio, payload)


def test_sample_twilio_hook_runs_unchanged_from_the_0700_checkout(servers, twilio, checkout):
    server = servers["with_ca"]
    script = (checkout / "hooks" / "twilio_sms.py").read_text()
    assert script == (ROOT / "hooks" / "twilio_sms.py").read_text()
    hook = server.upload("twilio-sms", script, SAMPLE_SECRETS)
    payload, record = server.run(hook)
    assert (record["status"], record["error"]) == ("success", None), record
    assert_delivered(twilio, payload)


def test_without_the_ca_bundle_the_hook_fails_certificate_verification(servers, twilio):
    server = servers["without_ca"]
    assert_layers_complete(server)

    hook = server.upload("plain-twilio", PLAIN_TWILIO_HOOK, PLAIN_SECRETS)
    _, record = server.run(hook)
    assert record["status"] == "error" and record["result"] is None, record
    assert "CERTIFICATE_VERIFY_FAILED" in record["error"]["message"] or (
        "certificate verify failed" in record["error"]["message"]), record["error"]
    # The handshake failed, so the stand-in never saw a request; and the engine lives on.
    assert twilio.requests == []
    assert server.process.poll() is None
    assert server.call("GET", "/hooks", 200)
