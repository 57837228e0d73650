"""Auth0's Python SDK (auth0-python 6.8.0) configures the Unified Phone Experience on a real
`hookengine serve`, and what it configured survives a restart."""

from __future__ import annotations

import httpx
import pytest
from auth0.management import Auth0
from auth0.management.errors import BadRequestError, ConflictError, NotFoundError

from standins import twilio as twilio_standin

from hookengine.branding import DEFAULT_BODIES, BrandingStore
from hookengine.secrets import load_cipher
from hookengine.store import Store
from serverprocess import ServerProcess

TOKEN = twilio_standin.TEST_AUTH_TOKEN
SID = twilio_standin.TEST_ACCOUNT_SID


@pytest.fixture
def server(tmp_path, twilio):
    # Test sends reach Twilio's API host, which the host map sends to the stand-in.
    server = ServerProcess(tmp_path / "data", HOST_MAP=f"api.twilio.com={twilio.url}").start()
    yield server
    if server.process.poll() is None:
        server.terminate()


def connect(server) -> tuple[Auth0, httpx.Client]:
    # max_retries=0: the SDK retries 409s, which a test expects on purpose.
    http = httpx.Client(timeout=30)
    return Auth0(base_url=server.api, token=server.token, httpx_client=http, max_retries=0), http


def test_sdk_configures_the_phone_provider(server, twilio):
    sdk, http = connect(server)
    providers = sdk.branding.phone.providers
    created = providers.create(name="twilio", credentials={"auth_token": TOKEN}, configuration={
        "sid": SID, "default_from": "+15550001111", "delivery_methods": ["text", "voice"]})
    assert created.id.startswith("pro_") and created.channel == "phone"
    assert created.configuration.delivery_methods == ["text", "voice"]
    assert getattr(created, "credentials", None) is None

    with pytest.raises(ConflictError):
        providers.create(name="custom", credentials={}, configuration={
            "delivery_methods": ["text"]})
    with pytest.raises(BadRequestError) as raised:
        providers.update(created.id, configuration={"sid": SID,
                                                    "delivery_methods": ["voice"]})
    assert raised.value.body["message"].startswith("Bad Operation on Notification Resource")

    updated = providers.update(created.id, disabled=True)
    assert updated.disabled is True
    (listed,) = providers.list().providers
    assert listed.id == created.id and listed.disabled is True
    assert providers.list(disabled=False).providers == []
    assert TOKEN not in http.get(f"{server.api}/branding/phone/providers",
                                 headers={"Authorization": f"Bearer {server.token}"}).text

    providers.update(created.id, disabled=False)
    providers.test(created.id, to="+14155550123", delivery_method="voice")
    [call] = twilio.requests  # a real test call, read from the verify template
    assert call.path == f"/2010-04-01/Accounts/{SID}/Calls.json" and "<Say" in call.form["Twiml"]

    providers.delete(created.id)
    with pytest.raises(NotFoundError):
        providers.get(created.id)
    http.close()


def test_sdk_configures_phone_templates(server):
    sdk, http = connect(server)
    templates = sdk.branding.phone.templates
    listed = templates.list().templates
    assert {t.type for t in listed} == set(DEFAULT_BODIES)
    assert all(t.id is None for t in listed)

    created = templates.create(type="otp_verify", disabled=False, content={
        "from": "+15550002222", "body": {"text": "{{ code }} is your code"}})
    assert created.id.startswith("tem_") and created.content.syntax == "liquid"
    with pytest.raises(ConflictError):
        templates.create(type="otp_verify")
    with pytest.raises(BadRequestError) as raised:
        templates.update(created.id, content={"body": {"text": "{% if code %}"}})
    assert raised.value.body["errors"] == [
        "content/body/text: expected tag endif, found end of expression (line 1, column 14)"]

    updated = templates.update(created.id, disabled=True,
                               content={"body": {"voice": "{{ code }}"}})
    assert (updated.disabled, updated.content.body.voice) == (True, "{{ code }}")
    assert templates.get(created.id).content.body.text == "{{ code }} is your code"

    reset = templates.reset(created.id, request={})
    assert reset.content.body.text == DEFAULT_BODIES["otp_verify"]["text"]
    assert reset.content.from_ == "+15550002222"

    templates.delete(created.id)
    with pytest.raises(NotFoundError):
        templates.delete(created.id)
    http.close()


def test_configuration_survives_a_restart(server, tmp_path):
    sdk, http = connect(server)
    provider = sdk.branding.phone.providers.create(
        name="twilio", credentials={"auth_token": TOKEN},
        configuration={"sid": SID, "mssid": "MG0001", "delivery_methods": ["text"]})
    template = sdk.branding.phone.templates.create(
        type="otp_enroll", content={"body": {"text": "Enroll with {{ code }}"}})
    http.close()
    assert server.terminate() == 0

    server.start()
    sdk, http = connect(server)
    assert sdk.branding.phone.providers.get(provider.id).configuration.mssid == "MG0001"
    assert sdk.branding.phone.templates.get(template.id).content.body.text == \
        "Enroll with {{ code }}"
    http.close()
    server.terminate()

    # The token was stored encrypted with the data directory's key, and decrypts with it.
    store = Store(tmp_path / "data").open()
    try:
        branding = BrandingStore(store, load_cipher("", tmp_path / "data"))
        assert branding.provider()["credentials"] == {"auth_token": TOKEN}
        assert branding.template("otp_enroll")["content"]["body"]["text"] == \
            "Enroll with {{ code }}"
    finally:
        store.close()
