"""Stored hooks from the command line: list, show, enable, disable, delete, secrets.

Each command talks to a running engine through its API; HOOK is a hook's id or its name.
"""

from __future__ import annotations

import json

import click

from hookengine.apiclient import all_hooks, resolve_hook, with_api
from hookengine.envfile import read_env_file


@click.command("list")
@with_api
def list_hooks(api):
    """List hooks: id, enabled or not, trigger, name."""
    hooks = sorted(all_hooks(api), key=lambda h: (h["triggerId"], h["name"]))
    if not hooks:
        click.echo("no hooks yet; `hookengine push FILE.py` creates one", err=True)
    for hook in hooks:
        state = "enabled " if hook["enabled"] else "disabled"
        click.echo(f"{hook['id']}  {state}  {hook['triggerId']:<22}  {hook['name']}")


@click.command()
@click.argument("hook")
@click.option("--json", "as_json", is_flag=True, help="The hook as the API returns it, "
              "with its secret names.")
@with_api
def show(hook, as_json, api):
    """Show a hook: trigger, enabled state, dependencies, secret names and script."""
    hook = resolve_hook(api, hook)
    secrets = sorted(api.get(f"/hooks/{hook['id']}/secrets"))
    if as_json:
        click.echo(json.dumps({**hook, "secrets": secrets}, indent=2))
        return
    dependencies = ", ".join(f"{name} {version}" for name, version in
                             hook["dependencies"].items())
    click.echo(f"id:           {hook['id']}\n"
               f"name:         {hook['name']}\n"
               f"trigger:      {hook['triggerId']}\n"
               f"enabled:      {'yes' if hook['enabled'] else 'no'}\n"
               f"dependencies: {dependencies or 'none'}\n"
               f"secrets set:  {', '.join(secrets) or 'none'}\n"
               "script:\n" + hook["script"].rstrip("\n"))


@click.command()
@click.argument("hook")
@with_api
def enable(hook, api):
    """Make HOOK the enabled hook of its trigger (the one enabled so far is disabled)."""
    hook = resolve_hook(api, hook)
    before = all_hooks(api, triggerId=hook["triggerId"], enabled="true")
    api.patch(f"/hooks/{hook['id']}", {"enabled": True})
    replaced = [h["name"] for h in before if h["id"] != hook["id"]]
    click.echo(f"enabled {hook['name']} for {hook['triggerId']}"
               + (f"; {replaced[0]} is disabled now" if replaced else ""))


@click.command()
@click.argument("hook")
@with_api
def disable(hook, api):
    """Disable HOOK; its trigger then has no enabled hook."""
    hook = resolve_hook(api, hook)
    api.patch(f"/hooks/{hook['id']}", {"enabled": False})
    click.echo(f"disabled {hook['name']}; no hook is enabled for {hook['triggerId']} now"
               if hook["enabled"] else f"{hook['name']} was not enabled; nothing changed")


@click.command()
@click.argument("hook")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_api
def delete(hook, yes, api):
    """Delete HOOK and its secrets."""
    hook = resolve_hook(api, hook)
    if not yes:
        click.confirm(f"Delete hook {hook['name']} ({hook['id']}) and its secrets?", abort=True,
                      err=True)
    api.delete(f"/hooks/{hook['id']}")
    click.echo(f"deleted {hook['name']} ({hook['id']})")


@click.group()
def secrets():
    """Set, list and delete a stored hook's secrets (values are never shown)."""


@secrets.command("set")
@click.argument("hook")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--from", "env_file", default=None, metavar="FILE.env",
              help="Read NAME=VALUE lines from an env file (NAME=VALUE arguments win).")
@with_api
def secrets_set(hook, assignments, env_file, api):
    """Set secrets of HOOK, adding new names and replacing the values of existing ones."""
    env = read_env_file(env_file)
    values = dict(env.values)
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {assignment!r}",
                                     param_hint="NAME=VALUE")
        if not value:
            raise click.BadParameter(f"{name} has no value (`hookengine secrets delete` "
                                     "removes a secret)", param_hint="NAME=VALUE")
        values[name] = value
    not_set = env.not_set(env.empty)
    if not values:
        raise click.UsageError("no secret to set: give NAME=VALUE or --from FILE.env"
                               + (f" (not set: {not_set})" if not_set else ""))
    hook = resolve_hook(api, hook)
    api.set_secrets(hook["id"], values)
    from hookengine.scripts import parse_metadata

    metadata, _ = parse_metadata(hook["script"])
    undeclared = sorted(set(values) - set(metadata.all_secrets()))
    click.echo(f"set on {hook['name']}: {', '.join(sorted(values))}"
               + (f"; not set: {not_set}" if not_set else "")
               + (f"; the script does not declare {', '.join(undeclared)}" if undeclared
                  else ""))


@secrets.command("list")
@click.argument("hook")
@with_api
def secrets_list(hook, api):
    """Print the names of HOOK's secrets, one a line."""
    hook = resolve_hook(api, hook)
    for name in sorted(api.get(f"/hooks/{hook['id']}/secrets")):
        click.echo(name)


@secrets.command("delete")
@click.argument("hook")
@click.argument("names", nargs=-1, required=True)
@with_api
def secrets_delete(hook, names, api):
    """Delete the named secrets of HOOK."""
    hook = resolve_hook(api, hook)
    api.delete(f"/hooks/{hook['id']}/secrets", list(names))
    click.echo(f"deleted from {hook['name']}: {', '.join(names)}")


COMMANDS = (list_hooks, show, enable, disable, delete, secrets)
