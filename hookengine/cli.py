"""The `hookengine` command: serve | token | key | run | logs | push | phone, and hook management.

Every error a user can cause (a missing file, a bad setting, a server that is gone, an unknown
hook, any answer of the API that is an error) ends as one line on stderr saying what to do,
never a traceback: `Cli.invoke` below is the one place that turns them into that line.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

import click

from hookengine import manage
from hookengine.apiclient import DEFAULT_URL, ApiError, resolve_hook, with_api
from hookengine.config import load_settings, unknown_variables
from hookengine.envfile import read_env_file
from hookengine.errors import DataDirInUse, HookEngineError
from hookengine.triggers import TRIGGERS


class OneLineError(click.ClickException):
    """Shown as `Error: <message>`, its whitespace folded so that it stays one line."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


class Cli(click.Group):
    """The `hookengine` group: whatever a command raises that a user caused, it says in one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OneLineError:
            raise
        except click.UsageError as error:
            # Click's own form is usage, a hint and the error over four lines; the hint suffices.
            command = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            raise OneLineError(error.format_message() + command, error.exit_code) from None
        except click.ClickException as error:
            raise OneLineError(error.format_message(), error.exit_code) from None
        except ApiError as error:
            raise OneLineError(error.message) from None
        except HookEngineError as error:  # ConfigError from settings, the store's refusals
            raise OneLineError(error.message) from None
        except OSError as error:  # files the user named: payloads, env files, hook files
            raise OneLineError(f"{error.filename}: {error.strerror}" if error.filename
                               else str(error)) from None


def _settings(data_dir: str | None) -> dict:
    # A bad setting raises ConfigError: Cli.invoke makes it one line.
    return load_settings({"DATA_DIR": data_dir} if data_dir else None)


def _engine(data_dir: str | None):
    from hookengine.engine import Engine

    return Engine(_settings(data_dir))


data_dir_option = click.option("--data-dir", envvar="HOOKENGINE_DATA_DIR", default=None,
                               help="Data directory (default: HOOKENGINE_DATA_DIR or "
                                    "./hookengine-data).")


@click.group(cls=Cli)
@click.version_option(package_name="hookengine", prog_name="hookengine")
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
    from waitress import wasyncore

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
        # Alone on SQLite (this directory's lock is ours): runs a previous server left
        # running were cut off, and are marked now. On PostgreSQL other nodes may be alive:
        # only those whose lease lapsed are.
        interrupted = engine.nodes.start(alone=engine.store.backend == "sqlite")
        if engine.wakeups is not None:
            engine.wakeups.start()
        if interrupted:
            click.echo(f"marked {interrupted} execution(s) cut off by the last stop as "
                       "interrupted", err=True)
        engine.installer.start()  # installs a stop cut off; environments nobody uses go
        engine.sandboxes.start()  # now: the first Run must not pay for starting them
        engine.log_delivery.start()  # log streams' queues, including what a stop left
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

        def drain(signum, frame):
            """SIGTERM: take no new connection or run, let the runs in flight finish and
            their answers go out, then stop (a second SIGTERM stops at once)."""
            signal.signal(signal.SIGTERM, stop)
            engine.runner.draining.set()
            engine.end_streams()  # followers reconnect to another node and resume there
            # New connections are refused from now on (a balancer sends them elsewhere):
            # the listening socket is closed by the server's own loop, between events.
            server.accepting = False
            server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
            click.echo("draining: finishing runs in flight (SIGTERM again to stop now)",
                       err=True)
            threading.Thread(target=_stop_when_idle, args=(engine, server), daemon=True,
                             name="hookengine-drain").start()

        signal.signal(signal.SIGTERM, drain)
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
            engine.nodes.stop()
            engine.close()
        lock.release()
        if server is not None:
            click.echo("hookengine stopped", err=True)


def _stop_when_idle(engine, server) -> None:
    """Wait for the runs in flight (at most their timeout), give their answers a moment to
    be written, then stop the server as Ctrl-C would."""
    import _thread

    engine.runner.wait_idle(engine.settings["TIMEOUT_SECONDS"] + 5)
    deadline = time.monotonic() + 5
    # An answer is written by the server's own loop after the run's thread hands it over.
    while time.monotonic() < deadline and any(
            channel.total_outbufs_len or channel.requests
            for channel in list(server.active_channels.values())):
        time.sleep(0.02)
    _thread.interrupt_main()


@main.group()
def token():
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--scope", "scopes", multiple=True,
              help="Scope to grant (repeatable); every scope when none is given.")
@click.option("--description", default="")
@data_dir_option
def token_create(scopes, description, data_dir):
    """Print a new token on stdout, and the data directory holding it on stderr."""
    from hookengine.engine import Engine

    settings = _settings(data_dir)
    directory = Path(settings["DATA_DIR"]).resolve()
    existed = directory.exists()
    try:
        new_token = Engine(settings).tokens.create(list(scopes), description)
    except HookEngineError as error:
        raise click.UsageError(error.message) from None
    click.echo(f"token stored in {directory}", err=True)
    if not existed:
        # A mistyped --data-dir would otherwise make a token no running server knows.
        click.echo(f"warning: {directory} did not exist and was just created; a server with "
                   "another data directory will refuse this token", err=True)
    click.echo(new_token)


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


@main.command()
@click.option("--url", envvar="HOOKENGINE_URL", default=DEFAULT_URL, show_default=True,
              help="Base URL the engine is reached at (HOOKENGINE_URL).")
@data_dir_option
def ui(url, data_dir):
    """Print a one-time link that signs this browser in to the web editor (good for a
    minute, once)."""
    from hookengine.sessions import LINK_SECONDS

    link = _engine(data_dir).sessions.create_link()
    click.echo(f"open within {LINK_SECONDS} s (one use):", err=True)
    click.echo(f"{url.rstrip('/')}/ui/sign-in/{link}")


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
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise click.BadParameter(f"cannot read {text[1:]}: {error.strerror}",
                                     param_hint="--payload") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--payload") from None


def _is_path(target: str) -> bool:
    # Hook ids and names hold neither (names: letters, digits, spaces and '-').
    return "/" in target or "." in target


@main.command()
@click.argument("target")
@click.option("--payload", default=None, help="JSON, or @file.json; default: the trigger's "
              "sample payload.")
@click.option("--secrets", "secrets_file", default=None, help="Env file with the hook's "
              "secrets (hook files only).")
@click.option("--trigger", type=click.Choice(list(TRIGGERS)), default=None,
              help="Trigger of a hook file (default: its PEP 723 block's, else the one whose "
                   "entry function it defines).")
@with_api
def run(target, payload, secrets_file, trigger, api):
    """Run a hook file locally in the sandbox, or a stored hook (id or name) through the API."""
    payload = _read_payload(payload)
    if Path(target).is_file():
        from hookengine.runner import run_file

        record = run_file(Path(target), payload, read_env_file(secrets_file).values,
                          _settings(None), trigger,
                          show_line=lambda line: click.echo(_format_line(line), err=True))
    elif _is_path(target):
        raise click.ClickException(f"{target}: no such hook file")
    elif secrets_file or trigger:
        raise click.ClickException(
            f"{'--secrets' if secrets_file else '--trigger'} is for hook files; a stored "
            "hook's " + ("secrets are stored on the server (`hookengine secrets set`)"
                         if secrets_file else "trigger is fixed"))
    else:
        hook = resolve_hook(api, target)
        if hook.get("dependencies_status") == "installing":
            click.echo(f"waiting for {hook['name']}'s dependencies to install...", err=True)
        record = api.post(f"/hooks/{hook['id']}/run", {"payload": payload}
                          if payload is not None else {})
    click.echo(json.dumps(record, indent=2))
    if record.get("status") != "success":
        sys.exit(1)


@main.command()
@click.argument("hook")
@click.option("--follow", is_flag=True, help="Stream new lines as executions happen.")
@with_api
def logs(hook, follow, api):
    """Print a hook's log lines (newest last); --follow keeps streaming."""
    hook_id = resolve_hook(api, hook)["id"]
    for line in reversed(api.get(f"/hooks/{hook_id}/logs")["logs"]):
        click.echo(_format_line(line))
    if follow:
        _follow(api, hook_id)


def _follow(api, hook_id: str) -> None:
    """Stream a hook's lines; when the engine goes away (a restart), reconnect and resume
    after the last line shown, so nothing is missed or shown twice. Ctrl-C ends it."""
    import requests

    last, cut_off = None, False
    while True:
        try:
            for position, line in api.events(f"/hooks/{hook_id}/logs?follow=true", last):
                if cut_off:
                    click.echo("reconnected", err=True)
                    cut_off = False
                last = position
                if line is not None:
                    click.echo(_format_line(line))
        except ApiError as error:
            if error.status not in (None, 502, 503, 504):  # the hook is gone, a bad token
                raise
        except requests.RequestException:
            pass  # cut off mid-stream
        if not cut_off:
            click.echo("lost the connection to the engine; reconnecting (Ctrl-C to stop)",
                       err=True)
            cut_off = True
        time.sleep(1)


def _format_line(line: dict) -> str:
    """One log line as the CLI shows it (a local run's lines have no execution id)."""
    execution = f" {line['execution_id']}" if line.get("execution_id") else ""
    return f"{line['time']}{execution} {line['stream']}: {line['message']}"


@main.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--secrets", "secrets_file", default=None,
              help="Env file with secret values; only the names a hook declares are set.")
@with_api
def push(paths, secrets_file, api):
    """Create or update a hook per file (FILE.py, or DIR for DIR/*.py) and set its secrets.

    The hook's name is the file's stem with _ turned into -. Which hook of a trigger is
    enabled changes only where a file says `enabled = true` (or false) in [tool.hookengine].
    """
    from hookengine.push import push as push_files

    failures = push_files(list(paths), read_env_file(secrets_file), api, click.echo)
    if failures:
        raise click.ClickException(f"{failures} of the files could not be pushed; see above")


@main.group()
def phone():
    """Phone MFA delivery: send a test code, read the development outbox."""


@phone.command("test")
@click.argument("recipient")
@click.option("--voice", is_flag=True, help="A voice call instead of an SMS.")
@with_api
def phone_test(recipient, voice, api):
    """Send a random code to RECIPIENT (E.164) through the configured provider."""
    import secrets as stdlib_secrets

    answer = api.post("/guardian/factors/phone/deliveries", {
        "recipient": recipient, "user_id": "hookengine-cli|phone-test",
        "message_type": "voice" if voice else "sms", "action": "authentication",
        "code": f"{stdlib_secrets.randbelow(10**6):06d}", "ip": "127.0.0.1",
        "user_agent": "hookengine-cli"})
    execution = f" (execution {answer['execution_id']})" if answer.get("execution_id") else ""
    click.echo(f"sent by {answer['provider']}{execution}; "
               f"{answer['rate_limit']['remaining']} more for this test user this hour")


@phone.command("outbox")
@with_api
def phone_outbox(api):
    """Print what the development provider (auth0) has sent, oldest first."""
    for message in api.get("/guardian/factors/phone/dev-outbox"):
        click.echo(f"{message['created_at']} {message['recipient']} {message['message_type']}: "
                   f"{message['text']}")


for command in manage.COMMANDS:
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="hookengine")  # `python -m hookengine.cli` says what to type: hookengine
