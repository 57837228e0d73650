"""A small client of the engine's own HTTP API, for the CLI.

Every failure, from a refused connection to a 4xx answer, comes out as one `ApiError` whose
message is a single line saying what happened and, where it can, what to do; the CLI prints
that line and nothing else.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import requests

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    """The engine could not be reached, or it answered with an error (`status` then set)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class ApiClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 120):
        # Imported here, not at the top: it takes longer to import than the rest of the CLI,
        # and `--help`, `token` and `key` commands never need it.
        import requests

        self.url = base_url.rstrip("/")
        self.base = self.url + "/api/v2"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str):
        return self._call("GET", path)

    def post(self, path: str, body):
        return self._call("POST", path, body)

    def patch(self, path: str, body):
        return self._call("PATCH", path, body)

    def delete(self, path: str, body=None):
        return self._call("DELETE", path, body)

    def _call(self, method: str, path: str, body=None):
        with self._request(method, path, json=body, timeout=self.timeout) as response:
            if response.status_code == 204:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(f"{method} {path}: HTTP {response.status_code} with a body that "
                               f"is not JSON; is {self.url} a hookengine server?",
                               response.status_code) from None

    def set_secrets(self, hook_id: str, values: dict[str, str]) -> dict:
        """Create the secrets the hook does not have and change those it has; others stay.
        Returns the names it had before (`{NAME: "_VALUE_NOT_SHOWN_"}`)."""
        stored = self.get(f"/hooks/{hook_id}/secrets")
        new = {name: value for name, value in values.items() if name not in stored}
        changed = {name: value for name, value in values.items() if name in stored}
        if new:
            self.post(f"/hooks/{hook_id}/secrets", new)
        if changed:
            self.patch(f"/hooks/{hook_id}/secrets", changed)
        return stored

    def events(self, path: str, last_id: int | None = None):
        """Yield (position, data) for each Server-Sent Event of a live log stream, starting
        after `last_id` when given (sent as Last-Event-ID, as a browser resumes). The stream's
        opening comment names the position it starts from, yielded as (position, None)."""
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        # Heartbeats come every few seconds: a minute of silence is a server that is gone.
        with self._request("GET", path, stream=True, timeout=(10, 60),
                           headers=headers) as response:
            position = last_id
            for raw in response.iter_lines(decode_unicode=True):
                if raw.startswith(": following after "):
                    yield int(raw.rsplit(" ", 1)[1]), None
                elif raw.startswith("id: "):
                    position = int(raw[len("id: "):])
                elif raw.startswith("data: "):
                    yield position, json.loads(raw[len("data: "):])

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        import requests

        if not self.token:
            # Checked here, not in __init__: a local `hookengine run FILE` needs no token.
            raise ApiError("an API token is needed: pass --token or set HOOKENGINE_TOKEN "
                           "(create one with `hookengine token create`)")
        try:
            response = self.session.request(method, self.base + path, **kwargs)
        except requests.ConnectionError:
            raise ApiError(f"cannot reach the engine at {self.url}; is `hookengine serve` "
                           "running? (set --url or HOOKENGINE_URL if it runs elsewhere)") from None
        except requests.Timeout:
            raise ApiError(f"the engine at {self.url} did not answer in time") from None
        if response.status_code >= 400:
            with response:
                raise ApiError(_error_message(response), response.status_code)
        return response


def _error_message(response: requests.Response) -> str:
    """The API's own message (Auth0's error shape), with a hint where one helps."""
    try:
        message = str(response.json().get("message"))
    except (ValueError, AttributeError):
        message = f"HTTP {response.status_code} {response.reason}"
    if response.status_code == 401:
        message += " Check --token or HOOKENGINE_TOKEN (`hookengine token create` makes one)."
    return message


def all_hooks(api: ApiClient, **query: str) -> list[dict]:
    """Every hook, page after page (the API gives at most 100 at a time)."""
    filters = "".join(f"&{key}={value}" for key, value in query.items())
    hooks, page = [], 0
    while True:
        batch = api.get(f"/hooks?per_page=100&page={page}{filters}")
        hooks += batch
        if len(batch) < 100:
            return hooks
        page += 1


def resolve_hook(api: ApiClient, ref: str) -> dict:
    """The hook whose id or, failing that, name is `ref`; one line of advice when none is."""
    hooks = all_hooks(api)
    for key in ("id", "name"):
        for hook in hooks:
            if hook[key] == ref:
                return hook
    raise ApiError(f"no hook has the id or name {ref!r}; `hookengine list` shows them", 404)


def with_api(command):
    """Give a click command --url and --token; it receives them as `api`, an ApiClient."""
    @click.option("--url", envvar="HOOKENGINE_URL", default=DEFAULT_URL, show_default=True,
                  help="Base URL of a running engine (HOOKENGINE_URL).")
    @click.option("--token", envvar="HOOKENGINE_TOKEN", default=None,
                  help="API token (HOOKENGINE_TOKEN).")
    @functools.wraps(command)
    def with_client(*args, url, token, **kwargs):
        return command(*args, api=ApiClient(url, token), **kwargs)
    return with_client
