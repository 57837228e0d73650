"""Pre-loading of allowed packages in the zygote, lazily loaded parts included.

A child that touches `client.messages` for the first time pays ~80 ms of lazy imports in
twilio; loading them once in the zygote makes every child start with them shared
copy-on-write (reference/peers-performance.md §0.3).
"""

from __future__ import annotations

import importlib
import logging

from hookengine.sandbox.policy import bind_tables

log = logging.getLogger(__name__)


def _twilio() -> None:
    from twilio.rest import Client
    from twilio.twiml.voice_response import VoiceResponse  # noqa: F401
    from twilio.base.exceptions import TwilioRestException  # noqa: F401

    client = Client("AC" + "0" * 32, "warmup")
    # Each attribute imports a product's modules on first access.
    client.api.v2010.account.messages
    client.api.v2010.account.calls
    client.messages, client.calls
    client.verify.v2.services
    client.messaging.v1.services
    client.lookups.v2.phone_numbers


def _vonage() -> None:
    import vonage
    from vonage_http_client import HttpClientOptions

    client = vonage.Vonage(vonage.Auth(api_key="warmup", api_secret="warmup"),
                           HttpClientOptions(timeout=10, max_retries=0))
    for product in ("sms", "voice", "verify", "messages", "number_insight"):
        getattr(client, product)
    for module in ("vonage_sms", "vonage_voice", "vonage_verify", "vonage_messages", "jwt"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def _requests() -> None:
    import requests

    requests.Session()  # builds the adapters and loads certifi's bundle path


WARMERS = {"twilio": _twilio, "vonage": _vonage, "requests": _requests}


def warm(package: str) -> None:
    """Import `package` and run its warmer; a package without one is only imported."""
    from hookengine.sandbox.deps import module_roots

    for root in sorted(module_roots(package)):
        try:
            importlib.import_module(root)
        except ImportError as error:
            log.warning("cannot preload %s (%s): %s", root, package, error)
    warmer = WARMERS.get(package)
    if warmer:
        warmer()
    # The policy's tables name functions of these packages: find them once here, in the
    # zygote, so that every child shares the bound tables instead of binding its own.
    bind_tables()
