"""Helpers of allowed modules that act on the host instead of on data: they open files by
path, write files, change the process environment or are command-line entry points.

Each is refused however the hook reaches it (module attribute, `from ... import`, an
instance's method, the class's function), with an error naming it and saying what it does.
Before policy.SIDE_EFFECT_HELPERS, `requests.utils.atomic_open` created or replaced any file
the hook's uid could write, `set_environ` pointed requests at any netrc or CA file, and
`get_netrc_auth` parsed whichever file NETRC named."""

import importlib
import os
import zipfile

import pytest

from attacklib import hook, refused
from hookengine.sandbox import policy
from hookengine.sandbox.policy import Guard


@pytest.fixture
def writable_dir(world_dir):
    os.chmod(world_dir, 0o777)
    return world_dir


def test_atomic_open_cannot_create_files(run, writable_dir):
    target = writable_dir / "written.txt"
    result = run(hook(f'''
with requests.utils.atomic_open({str(target)!r}) as handle:
    handle.write(b"from the hook")
return "written"
''', "import requests.utils"))
    refused(result, "AccessDenied", "requests.utils.atomic_open is refused", "files")
    assert os.listdir(writable_dir) == []


def test_atomic_open_cannot_be_imported_by_name(run, writable_dir):
    result = run("from requests.utils import atomic_open\n" + hook("return 1"))
    refused(result, "ImportError", "requests.utils.atomic_open is refused")


def test_extract_zipped_paths_cannot_read_archives_or_write_members(run, writable_dir):
    archive = writable_dir / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("inner/secret.txt", "ZIP-MARKER-91d2")
    os.chmod(archive, 0o644)
    result = run(hook(f"return requests.utils.extract_zipped_paths("
                      f"{str(archive / 'inner' / 'secret.txt')!r})", "import requests.utils"))
    refused(result, "AccessDenied", "requests.utils.extract_zipped_paths is refused")
    assert "ZIP-MARKER" not in repr(result.error)


@pytest.mark.parametrize("body, name", [
    ('with requests.utils.set_environ("NETRC", "/etc/passwd"):\n'
     '    return requests.utils.get_netrc_auth("https://api.twilio.com/")',
     "requests.utils.set_environ"),
    ('return requests.utils.get_netrc_auth("https://api.twilio.com/", raise_errors=True)',
     "requests.utils.get_netrc_auth"),
])
def test_environment_and_netrc_helpers_are_refused(run, body, name):
    refused(run(hook(body, "import requests.utils")), "AccessDenied", f"{name} is refused")


VONAGE = ("from vonage import Auth, HttpClientOptions, Vonage\n"
          "import vonage_http_client.http_client")
CLIENT = ('client = Vonage(Auth(api_key="k", api_secret="s"), '
          'HttpClientOptions(timeout=2, max_retries=0))')


@pytest.mark.parametrize("call, name", [
    ("client.http_client.download_file_stream(URL, TARGET)",
     "HttpClient.download_file_stream"),
    ("vonage_http_client.http_client.HttpClient.download_file_stream("
     "client.http_client, URL, TARGET)", "HttpClient.download_file_stream"),
    ("client.voice.download_recording(URL, TARGET)", "Voice.download_recording"),
])
def test_vonage_downloads_to_a_path_are_refused(run, listener, writable_dir, call, name):
    target = writable_dir / "downloaded.bin"
    url = f"http://127.0.0.1:{listener.port}/recording"
    result = run(hook(f"{CLIENT}\nURL = {url!r}\nTARGET = {str(target)!r}\nreturn {call}",
                      VONAGE))
    refused(result, "AccessDenied", name, "writes files")
    assert listener.received == []
    assert not target.exists()


@pytest.mark.parametrize("expression, name", [
    ("zoneinfo.reset_tzpath(['/etc'])", "zoneinfo.reset_tzpath"),
    ("base64.main()", "base64.main"),
    ("calendar.main(['calendar', '2024'])", "calendar.main"),
])
def test_standard_library_helpers_with_side_effects_are_refused(run, expression, name):
    result = run(hook(f"return {expression}", "import zoneinfo, base64, calendar"))
    refused(result, "AccessDenied", f"{name} is refused")


def test_hasattr_does_not_reveal_refused_helpers(run):
    result = run(hook('return [hasattr(requests.utils, "atomic_open"), '
                      'hasattr(requests.utils, "quote")]', "import requests.utils"))
    assert result.status == "success", result.error
    assert result.result == [False, True]


def test_the_rest_of_those_modules_still_works(run):
    result = run(hook('''
return [requests.utils.quote("a b"), requests.utils.requote_uri("http://x/a b"),
        requests.utils.default_headers()["Accept"], zoneinfo.ZoneInfo("Europe/Paris").key,
        base64.b64encode(b"hi").decode(), calendar.isleap(2024), calendar.monthrange(2024, 2)]
''', "import requests.utils, zoneinfo, base64, calendar"))
    assert result.status == "success", result.error
    assert result.result == ["a%20b", "http://x/a%20b", "*/*", "Europe/Paris", "aGk=", True,
                             [3, 29]]


# -- refused even in a package a hook declares; every table entry names a real object

@pytest.mark.parametrize("module, item", [
    ("charset_normalizer", "from_path"),
    ("charset_normalizer", "is_binary"),
    ("urllib3.util.connection", "create_connection"),
    ("jwt", "PyJWKClient"),
])
def test_refused_whatever_the_package_declared(module, item):
    guard = Guard(frozenset({"charset_normalizer", "urllib3", "jwt"}))
    with pytest.raises(ImportError, match=" is refused to hooks: it "):
        guard.import_(module, fromlist=(item,))


def test_every_table_entry_names_an_object_of_the_installed_packages():
    for name in list(policy.SIDE_EFFECT_HELPERS) + list(policy.PATH_ARGUMENTS):
        module = name
        while module not in ("", None):
            try:
                importlib.import_module(module)
                break
            except ImportError:
                module = module.rpartition(".")[0]
    policy.bind_tables()
    assert not set(policy._PENDING) & (set(policy.SIDE_EFFECT_HELPERS)
                                       | set(policy.PATH_ARGUMENTS))


def test_a_helper_of_a_module_loaded_while_the_hook_runs_is_refused(monkeypatch):
    # The SDKs import some modules lazily, after the zygote bound the tables: the guard
    # binds what is pending whenever modules were loaded since, before judging a callable.
    import requests.utils

    guard = Guard(frozenset({"requests"}))  # binds the tables as a run's guard does
    entry = policy._Refused("requests.utils.atomic_open", "creates or replaces files")
    monkeypatch.delitem(policy.SPECIAL_CALLABLES, id(requests.utils.atomic_open))
    monkeypatch.setitem(policy._PENDING, entry.name, entry)
    monkeypatch.setattr(policy, "_bound_with", -1)  # as if modules were loaded since
    with pytest.raises(AttributeError, match="atomic_open is refused to hooks"):
        guard.check(requests.utils.atomic_open, "atomic_open")
    assert entry.name not in policy._PENDING
