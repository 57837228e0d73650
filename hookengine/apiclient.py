"""A small client of the engine's own HTTP API, for the CLI."""

from __future__ import annotations

import json

import click
import requests


class ApiClient:
    def __init__(self, base_url: str, token: str):
        self.base = base_url.rstrip("/") + "/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str):
        return self._call("GET", path)

    def post(self, path: str, body):
        return self._call("POST", path, body)

    def patch(self, path: str, body):
        return self._call("PATCH", path, body)

    def _call(self, method: str, path: str, body=None):
        try:
            response = self.session.request(method, self.base + path, json=body, timeout=120)
        except requests.ConnectionError:
            raise click.ClickException(f"cannot reach the engine at {self.base} (is "
                                       "`hookengine serve` running? see --url)") from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            raise click.ClickException(f"{method} {path}: HTTP {response.status_code}, "
                                       "not JSON") from None
        if response.status_code >= 400:
            raise click.ClickException(f"{method} {path}: {data.get('statusCode')} "
                                       f"{data.get('message')}")
        return data

    def stream(self, path: str):
        """Yield the JSON data of each Server-Sent Event."""
        with self.session.get(self.base + path, stream=True, timeout=(10, None)) as response:
            for raw in response.iter_lines(decode_unicode=True):
                if raw and raw.startswith("data: "):
                    yield json.loads(raw[len("data: "):])
