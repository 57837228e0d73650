"""Module identity: an import, and every module reached through a module's attributes, is
judged by the module the hook would really receive (its `__name__`), not by the name asked for.

`requests/packages.py` registers sys.modules aliases (`requests.packages.urllib3`, `.idna`,
`.chardet`, `.charset_normalizer`): each was a way to modules no hook declared, whose root
`requests` passed the old check (was a hole: `from_path` read any file; the charset_normalizer
command line's `FileType` was `open()`; urllib3's `create_connection` resolved names itself).
Command-line modules (`__main__`, `cli`, argparse-driven, bug-report commands) are refused
even in a declared package."""

import sys

import pytest

from attacklib import hook, refused
from hookengine.sandbox.policy import Guard, real_module_name


@pytest.mark.parametrize("statement, real", [
    ("from requests.packages.charset_normalizer import from_path",
     "module 'charset_normalizer'"),
    ("from requests.packages.chardet import from_bytes", "module 'charset_normalizer'"),
    ("from requests.packages.urllib3.util.connection import create_connection",
     "module 'urllib3.util.connection'"),
    ("import requests.packages.urllib3", "module 'urllib3'"),
    ("import requests.packages.urllib3.util.ssl_", "module 'urllib3.util.ssl_'"),
    ("from requests.packages.idna import encode", "module 'idna'"),
    # not loaded in the zygote: judged by the real name before anything is imported
    ("import requests.packages.idna.codec", "module 'idna.codec'"),
    ("from requests.packages.urllib3.contrib import socks", "module 'urllib3.contrib'"),
])
def test_alias_imports_are_judged_by_the_real_module(run, statement, real):
    result = run(f"{statement}\n" + hook("return 1"))
    text = refused(result, "ImportError", real)
    assert "not provided by a dependency the hook declares" in text


@pytest.mark.parametrize("statement", [
    "import requests.packages.charset_normalizer.cli",
    "from requests.packages.charset_normalizer.cli import __main__",
    "import requests.packages.charset_normalizer.cli.__main__",
    "from requests.packages.chardet.cli.__main__ import query_yes_no",
    "import requests.packages.idna.cli",
])
def test_alias_command_line_modules_are_refused(run, statement):
    result = run(f"{statement}\n" + hook("return 1"))
    assert result.status == "error"
    assert result.error["name"] in ("ImportError", "CompileError"), result.error
    assert "cli" in result.error["message"] or "__main__" in result.error["message"]


@pytest.mark.parametrize("path, fragment", [
    ("requests.compat.chardet", "module 'charset_normalizer'"),
    ("requests.packages.chardet", "module 'charset_normalizer'"),
    ("requests.packages.idna", "module 'idna'"),
    ("requests.adapters.Retry.DEFAULT", None),  # plain urllib3 data through requests: fine
])
def test_modules_reached_by_attribute_are_judged_by_the_real_module(run, path, fragment):
    result = run(hook(f"return repr({path})", "import requests.compat, requests.packages, "
                                               "requests.adapters"))
    if fragment is None:
        assert result.status == "success", result.error
    else:
        refused(result, "AccessDenied", fragment)


@pytest.mark.parametrize("statement, fragment", [
    ("import requests.help", "bug-report command"),
    ("from requests import help", "bug-report command"),
    ("from requests.help import info", "bug-report command"),
])
def test_command_line_modules_of_a_declared_package_are_refused(run, statement, fragment):
    refused(run(f"{statement}\n" + hook("return info()")), "ImportError", "requests.help",
            fragment)


def test_a_command_line_module_reached_by_attribute_is_refused(run):
    refused(run(hook("return requests.help.info()", "import requests")), "AccessDenied",
            "requests.help", "bug-report command")


def test_main_is_never_a_hook_module(run):
    result = run("import __main__\n" + hook("return 1"))
    assert result.status == "error"
    assert result.error["name"] in ("ImportError", "CompileError")
    assert "__main__" in result.error["message"]


def test_benign_imports_still_work(run):
    # A declared package's submodules, loaded in the zygote or not, plain urllib3 classes
    # requests re-exports, and the allowlisted parts of a standard-library package.
    result = run(hook('''
import twilio.base.obsolete
return [repr(twilio.base.obsolete), repr(VoiceResponse), Retry(total=2).total,
        urllib.parse.quote("a b"), repr(HTTPAdapter)]
''', "import urllib.parse\nfrom twilio.twiml.voice_response import VoiceResponse\n"
     "from requests.adapters import HTTPAdapter, Retry"))
    assert result.status == "success", result.error
    assert result.result[0] == "<module 'twilio.base.obsolete' (hook view)>"
    assert result.result[2:4] == [2, "a%20b"]


# -- the same rules, exercised on the guard directly (what a hook could not show from inside)

def test_real_module_name_resolves_aliases_loaded_or_not():
    import requests.packages  # noqa: F401 - registers the aliases

    assert real_module_name("requests.packages.urllib3.util") == "urllib3.util"
    assert real_module_name("requests.packages.urllib3.contrib.socks") == \
        "urllib3.contrib.socks"
    assert real_module_name("requests.packages.chardet") == "charset_normalizer"
    assert real_module_name("requests.utils") == "requests.utils"


def test_an_alias_of_an_unloaded_submodule_never_becomes_a_fresh_module(monkeypatch):
    import requests.packages  # noqa: F401

    for name in ("idna.compat", "requests.packages.idna.compat"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match="module 'idna.compat'"):
        Guard(frozenset({"requests"})).import_("requests.packages.idna.compat",
                                               fromlist=("encode",))
    assert "idna.compat" not in sys.modules  # refused before anything was imported
    # Declared, the same import loads the module once, under its real name only.
    proxy = Guard(frozenset({"requests", "idna"})).import_("requests.packages.idna.compat",
                                                           fromlist=("encode",))
    assert repr(proxy) == "<module 'idna.compat' (hook view)>"
    assert "requests.packages.idna.compat" not in sys.modules
    assert sys.modules["idna.compat"].__name__ == "idna.compat"


@pytest.mark.parametrize("name", ["charset_normalizer.cli", "charset_normalizer.__main__",
                                  "charset_normalizer.cli.__main__", "idna.cli",
                                  "certifi.__main__"])
def test_command_line_modules_are_refused_even_when_declared(name):
    guard = Guard(frozenset({"charset_normalizer", "idna", "certifi"}))
    with pytest.raises(ImportError, match="command-line entry point"):
        guard.import_(name, fromlist=("main",))


def test_command_line_parsers_are_refused_however_reached():
    import argparse

    guard = Guard(frozenset({"requests"}))
    for value in (argparse.FileType, argparse.ArgumentParser(), argparse):
        with pytest.raises(AttributeError, match="'argparse'"):
            guard.check(value, "a value")


def test_an_argparse_driven_module_is_refused_whatever_its_name(tmp_path, monkeypatch):
    package = tmp_path / "hookcli_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "tool.py").write_text("from argparse import ArgumentParser\n"
                                     "def run():\n    return ArgumentParser()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    guard = Guard(frozenset({"hookcli_pkg"}))
    assert repr(guard.import_("hookcli_pkg", fromlist=("VALUE",))) == \
        "<module 'hookcli_pkg' (hook view)>"
    with pytest.raises(ImportError, match="command-line parser"):
        guard.import_("hookcli_pkg.tool", fromlist=("run",))
    for name in ("hookcli_pkg", "hookcli_pkg.tool"):
        monkeypatch.delitem(sys.modules, name, raising=False)
