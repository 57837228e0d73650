"""The `hookengine` command: serve | token | key | run | logs | push."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click
from dotenv import dotenv_values

from hookengine.config import load_settings, unknown_variables
from hookengine.errors import ConfigError, DataDirInUse

DEFAULT_URL = "http://127.0.0.1:8080"


def _settings(data_dir: str | None) -> dict:
    try:
        return load_settings({"DATA_DIR": data_dir} if data_dir else None)
    except ConfigError as error:  # a bad setting is one line, not a traceback
        raise click.ClickException(error.message) from None


def _engine(data_dir: str | None):
    from hookengine.engine import Engine

    return Engine(_settings(data_dir))


data_dir_option = click.option("--data-dir", envvar="HOOKENGINE_DATA_DIR", default=None,
                               help="Data directory (default: HOOKENGINE_DATA_DIR or "
                                    "./hookengine-data).")
api_options = [
    click.option("--url", envvar="HOOKENGINE_URL", default=DEFAULT_URL, show_default=True,
                 help="Base URL of a running engine (HOOKENGINE_URL)."),
    click.option("--token", envvar="HOOKENGINE_TOKEN", default=None,
                 help="API token (HOOKENGINE_TOKEN)."),
]


def with_api(command):
    for option in reversed(api_options):
        command = option(command)
    return command


@click.group()
def main():
    """Self-hosted, sandboxed engine for custom hook scripts."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@data_dir_option
def serve(host, port, data_dir):
    """Run the engine behind a production WSGI server (waitress)."""
    from hookengine import create_app
    from hookengine.sandbox import describe_layers
    from hookengine.server import make_server
    from hookengine.serverlock import ServerLock

    overrides = {"DATA_DIR": data_dir} if data_dir else None
    settings = _settings(data_dir)
    # Warned, not refused: the environment is shared with other tools and versions, and a
    # setting an upgrade retires must not stop the engine from starting.
    for warning in unknown_variables():
        click.echo(f"warning: {warning}", err=True)
    try:
        # First of all: everything below assumes this is the data directory's only server
        # (marking runs interrupted, the zygotes' directories, the port).
        lock = ServerLock(settings["DATA_DIR"]).acquire()
    except DataDirInUse as error:
        raise click.ClickException(error.message) from None
    engine = server = None
    try:
        lock.reset_socket_dirs()
        app = create_app(overrides, lock=lock)
        engine = app.extensions["hookengine"]
        interrupted = engine.executions.mark_interrupted(lock.last_alive)
        if interrupted:
            click.echo(f"marked {interrupted} execution(s) cut off by the last stop as "
                       "interrupted", err=True)
        engine.sandboxes.start()  # now: the first Run must not pay for starting them
        try:
            server = make_server(app, host, port)
        except OSError as error:  # the port is taken, or the host is not this machine's
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {error.strerror or error}; stop what uses "
                "it, or choose another --host/--port") from None

        def stop(signum, frame):
            # Streams first: waitress waits for its threads as soon as it is interrupted,
            # and a live log stream holds one until told to end.
            engine.end_streams()
            raise KeyboardInterrupt  # unwinds server.run() below, so cleanup runs

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        click.echo(f"hookengine serving on http://{server.effective_host}:"
                   f"{server.effective_port} (data: {lock.data_dir}; sandbox layers: "
                   f"{describe_layers(engine.sandboxes.layers)})", err=True)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
    finally:
        if server is not None:
            server.close()
        if engine is not None:
            engine.close()
        lock.release()
        if server is not None:
            click.echo("hookengine stopped", err=True)


@main.group()
def token():
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--scope", "scopes", multiple=True,
              help="Scope to grant (repeatable); every scope when none is given.")
@click.option("--description", default="")
@data_dir_option
def token_create(scopes, description, data_dir):
    """Print a new token, and nothing else."""
    from hookengine.errors import HookEngineError

    try:
        click.echo(_engine(data_dir).tokens.create(list(scopes), description))
    except HookEngineError as error:
        raise click.UsageError(error.message) from None


@token.command("list")
@data_dir_option
def token_list(data_dir):
    """List tokens (ids and scopes; the tokens themselves are not stored)."""
    for row in _engine(data_dir).tokens.list():
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}  {state}  {row['scopes']}  {row['description']}")


@token.command("revoke")
@click.argument("token_id")
@data_dir_option
def token_revoke(token_id, data_dir):
    """Revoke a token by id."""
    if not _engine(data_dir).tokens.revoke(token_id):
        raise click.ClickException(f"No active token with id {token_id}")
    click.echo(f"revoked {token_id}")


@main.group()
def key():
    """Secret-encryption key management."""


@key.command("generate")
def key_generate():
    """Print a new key for HOOKENGINE_SECRET_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


def _read_payload(text: str | None):
    if text is None:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--payload") from None


def _read_env_file(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    if not Path(path).is_file():
        raise click.BadParameter(f"{path} does not exist", param_hint="--secrets")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@main.command()
@click.argument("target")
@click.option("--payload", default=None, help="JSON, or @file.json; default: the trigger's "
              "sample payload.")
@click.option("--secrets", "secrets_file", default=None, help="Env file with the hook's "
              "secrets (local files only).")
@with_api
def run(target, payload, secrets_file, url, token):
    """Run a hook file locally in the sandbox, or a stored hook (by id) through the API."""
    payload = _read_payload(payload)
    if Path(target).is_file():
        from hookengine.localrun import run_file

        record = run_file(Path(target), payload, _read_env_file(secrets_file), _settings(None))
    else:
        record = _api(url, token).post(f"/hooks/{target}/run", {"payload": payload}
                                       if payload is not None else {})
    click.echo(json.dumps(record, indent=2))
    if record.get("status") != "success":
        sys.exit(1)


@main.command()
@click.argument("hook_id")
@click.option("--follow", is_flag=True, help="Stream new lines as executions happen.")
@with_api
def logs(hook_id, follow, url, token):
    """Print a hook's log lines (newest last); --follow keeps streaming."""
    client = _api(url, token)
    for line in reversed(client.get(f"/hooks/{hook_id}/logs")["logs"]):
        click.echo(_format_line(line))
    if follow:
        for line in client.stream(f"/hooks/{hook_id}/logs?follow=true"):
            click.echo(_format_line(line))


def _format_line(line: dict) -> str:
    return f"{line['time']} {line['execution_id']} {line['stream']}: {line['message']}"


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--secrets", "secrets_file", default=None,
              help="Env file with secret values; only the names a hook declares are set.")
@with_api
def push(directory, secrets_file, url, token):
    """Create or update hooks from DIR/*.py (name = file stem) and set their secrets."""
    from hookengine.localrun import push_directory

    for line in push_directory(Path(directory), _read_env_file(secrets_file), _api(url, token)):
        click.echo(line)


def _api(url: str, token: str | None):
    from hookengine.apiclient import ApiClient

    if not token:
        raise click.UsageError("an API token is needed: --token or HOOKENGINE_TOKEN "
                               "(create one with `hookengine token create`)")
    return ApiClient(url, token)


if __name__ == "__main__":  # pragma: no cover
    main()
