"""Auth0's own Python SDK (auth0-python 6.8.0) manages hooks and secrets on a live server."""

from __future__ import annotations

import threading

import httpx
import pytest
import waitress
from auth0.management import Auth0
from auth0.management.errors import ConflictError, NotFoundError

HIDDEN = "_VALUE_NOT_SHOWN_"


@pytest.fixture
def base_url(app):
    """The app served by waitress (the production server) on a loopback port of its own."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    closing = threading.Event()

    def serve():
        try:
            server.run()
        except (OSError, ValueError):
            # Closing the sockets under the running loop can make its last select() fail;
            # only then is it expected.
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/api/v2"
    closing.set()
    server.close()  # the loop ends once no socket is left in its map
    server.task_dispatcher.shutdown()
    thread.join(timeout=10)
    assert not thread.is_alive()
    for channel in list(server._map.values()):  # connections the loop left open
        channel.close()


@pytest.fixture
def sdk(base_url, token):
    # ManagementClient(domain=...) always builds https://{domain}/api/v2; the generated
    # client underneath takes a whole base URL, so it can point at plain-http loopback.
    http = httpx.Client(timeout=10)
    yield Auth0(base_url=base_url, token=token(), httpx_client=http, max_retries=0)
    http.close()  # closes the keep-alive connections, so the server can stop


def test_sdk_creates_lists_updates_and_deletes_hooks(sdk):
    script = "def send_phone_message(recipient, text, context):\n    return {'MessageID': 'x'}\n"
    created = sdk.hooks.create(name="sdk-hook", script=script, trigger_id="send-phone-message",
                               dependencies={"twilio": "latest"})
    assert (created.name, created.enabled, created.dependencies) == ("sdk-hook", True,
                                                                     {"twilio": "latest"})
    second = sdk.hooks.create(name="sdk-hook-2", script=script,
                              trigger_id="send-phone-message", enabled=False)

    # The SDK's pager asks for include_totals=true and walks pages until one is empty.
    listed = list(sdk.hooks.list(per_page=1))
    assert [hook.id for hook in listed] == [created.id, second.id]
    enabled = list(sdk.hooks.list(enabled=True, trigger_id="send-phone-message"))
    assert [hook.id for hook in enabled] == [created.id]
    assert sdk.hooks.get(created.id, fields="id,name").name == "sdk-hook"

    updated = sdk.hooks.update(second.id, name="renamed", enabled=True)
    assert (updated.name, updated.enabled) == ("renamed", True)
    assert sdk.hooks.get(created.id).enabled is False

    with pytest.raises(ConflictError):
        sdk.hooks.update(created.id, name="renamed")

    sdk.hooks.delete(created.id)
    with pytest.raises(NotFoundError) as raised:
        sdk.hooks.get(created.id)
    assert raised.value.body["errorCode"] == "inexistent_hook"


def test_sdk_manages_secrets(sdk, engine):
    hook = sdk.hooks.create(name="with-secrets", trigger_id="send-phone-message",
                            script="def send_phone_message(recipient, text, context):\n"
                                   "    return None\n")
    sdk.hooks.secrets.create(hook.id, request={"TWILIO_AUTH_TOKEN": "t-1", "SID": "s-1"})
    assert sdk.hooks.secrets.get(hook.id) == {"TWILIO_AUTH_TOKEN": HIDDEN, "SID": HIDDEN}

    sdk.hooks.secrets.update(hook.id, request={"TWILIO_AUTH_TOKEN": "t-2"})
    assert engine.secrets.values(hook.id) == {"TWILIO_AUTH_TOKEN": "t-2", "SID": "s-1"}

    with pytest.raises(ConflictError):
        sdk.hooks.secrets.create(hook.id, request={"SID": "again"})
    with pytest.raises(NotFoundError):
        sdk.hooks.secrets.update(hook.id, request={"UNKNOWN": "x"})

    sdk.hooks.secrets.delete(hook.id, request=["SID"])
    assert sdk.hooks.secrets.get(hook.id) == {"TWILIO_AUTH_TOKEN": HIDDEN}
    sdk.hooks.delete(hook.id)
