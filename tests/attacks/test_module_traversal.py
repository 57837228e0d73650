"""Walking the twilio, vonage and requests object graphs towards os, sys, builtins, subprocess,
logging, threading, socket, ... and towards the SDKs' own code-from-data machinery (pydantic's
annotation eval and pickle, enum's module rewriting).

Every path here is real: each was found by exploring the installed SDKs. The ones marked
"was a hole" reached their target before hookengine/sandbox/policy.py refused them."""

import os

import pytest

from attacklib import hook, refused


ATTRIBUTE_PATHS = {
    # module attributes of the SDKs' own modules
    "twilio.http.http_client.os": "module 'os'",
    "twilio.http.http_client.os.system": "module 'os'",
    "twilio.http.http_client.logging": "module 'logging'",
    "twilio.base.client_base.os.environ": "module 'os'",
    "twilio.base.client_base.platform": "module 'platform'",
    "twilio.base.exceptions.sys.modules": "module 'sys'",
    "requests.utils.os": "module 'os'",
    "requests.utils.sys": "module 'sys'",
    "requests.utils.socket": "module 'socket'",
    "requests.utils.tempfile": "module 'tempfile'",
    "requests.utils.zipfile": "module 'zipfile'",
    "requests.utils.io": "module 'io'",
    "requests.utils.codecs": "module 'codecs'",
    "requests.cookies.threading": "module 'threading'",
    "requests.cookies.copy": "module 'copy'",
    "requests.compat.importlib": "module 'importlib'",
    "requests.compat.sys": "module 'sys'",
    "requests.adapters.socket": "module 'socket'",
    "requests.sessions.os": "module 'os'",
    "requests.models.encodings": "module 'encodings'",
    "requests.packages.urllib3": "module 'urllib3'",
    "requests.compat.cookielib": "module 'http.cookiejar'",
    # objects of denied modules held by SDK modules (was a hole: Logger -> handlers -> files)
    "vonage_http_client.http_client.logger": "Logger object from the module 'logging'",
    "twilio.request_validator.logger": "Logger object from the module 'logging'",
    # typing, the raw material of pydantic's string evaluation (was reachable)
    "twilio.http.Dict": "module 'typing'",
    "requests.auth.cast": "module 'typing'",
    # pydantic machinery on vonage models (was a hole: see the escapes below)
    "vonage_sms.SmsMessage.parse_raw": "module 'pydantic.main'",
    "vonage_sms.SmsMessage.parse_file": "module 'pydantic.main'",
    "vonage_sms.SmsMessage.model_rebuild": "module 'pydantic.main'",
    "vonage_sms.SmsMessage.model_fields['to']": "FieldInfo object from the module 'pydantic",
    "vonage_account.account.validate_call": "module 'pydantic.validate_call_decorator'",
    "vonage_account.responses.Field": "module 'pydantic.fields'",
    # warnings.warn with a stacklevel (was reachable: it printed engine frames into the log)
    "twilio.rest.accounts.warn": "module '_warnings'",
}

IMPORTS = ("import twilio.base.client_base, twilio.base.exceptions, twilio.http.http_client, "
           "twilio.request_validator, twilio.http, twilio.rest.accounts, requests, "
           "requests.utils, requests.cookies, "
           "requests.compat, requests.adapters, requests.sessions, requests.models, "
           "requests.packages, requests.auth, vonage_http_client.http_client, vonage_sms, "
           "vonage_account.account, vonage_account.responses")


@pytest.mark.parametrize("path", sorted(ATTRIBUTE_PATHS))
def test_attribute_paths_out_of_the_sdks_are_refused(run, path):
    result = run(hook(f"return repr({path})", IMPORTS))
    refused(result, ATTRIBUTE_PATHS[path])


@pytest.mark.parametrize("statement, fragment", [
    ("from twilio.http.http_client import os", "module 'os'"),
    ("from twilio.http.http_client import logging", "module 'logging'"),
    ("from twilio.base.exceptions import sys", "module 'sys'"),
    ("from requests.utils import socket", "module 'socket'"),
    ("from requests.packages import urllib3", "module 'urllib3'"),
    ("from requests.compat import importlib", "module 'importlib'"),
    ("from requests.packages.urllib3.util import connection", "module 'urllib3.util"),
    ("from requests.packages.urllib3.util.ssl_ import SSLContext", "urllib3.util.ssl_"),
    ("from vonage_http_client.http_client import ValidationError", "pydantic_core"),
    ("import twilio.http.http_client.os", "No module named"),
    ("from . import x", "relative imports"),
    ("from twilio import *", "not available to hooks"),
])
def test_imports_that_would_yield_a_denied_object_are_refused(run, statement, fragment):
    result = run(f"{statement}\ndef send_phone_message(recipient, text, context):\n"
                 "    return 1\n")
    if fragment == "not available to hooks":
        refused(result, "CompileError", "*")
    else:
        refused(result, "ImportError", fragment)


CLIENT = 'Client("AC" + "0" * 32, "token")'


@pytest.mark.parametrize("path, fragment", [
    (f"{CLIENT}.http_client.logger", "Logger object from the module 'logging'"),
    (f"{CLIENT}.http_client.session.adapters['https://'].poolmanager.pools.lock",
     "RLock object from the module '_thread'"),
    (f"{CLIENT}.http_client.session.adapters['https://'].poolmanager.key_fn_by_scheme['http']",
     "module 'functools'"),
    (f"list({CLIENT}.http_client.session.adapters['https://'].poolmanager"
     ".key_fn_by_scheme.values())", "module 'functools'"),
    (f"{CLIENT}.http_client.session.hooks['response'].append", None),
])
def test_walking_a_twilio_clients_object_graph(run, path, fragment):
    result = run(hook(f"return repr({path})", "from twilio.rest import Client"))
    if fragment is None:  # plain data on the way: reachable, harmless
        assert result.status == "success", result.error
    else:
        refused(result, fragment)


def test_warnings_cannot_print_engine_frames_into_the_log(run):
    result = run(hook('''
for level in [2, 3, 4]:
    try:
        twilio.rest.accounts.warn("probe", UserWarning, level)
    except AttributeError:
        pass
return 1
''', "import twilio.rest.accounts"))
    assert result.status == "success", result.error
    assert result.logs == []


def test_init_and_other_dunders_of_sdk_classes_do_not_compile(run):
    refused(run(hook("return t.Client.__init__.__globals__['os']", "import twilio.rest as t")),
            "CompileError", "__init__")


def test_values_returned_by_calls_are_checked_when_used(run, world_dir):
    # requests.utils.atomic_open hands out a real file object without passing a guard.
    os.chmod(world_dir, 0o777)
    target = world_dir / "written.txt"
    result = run(hook(f'''
with requests.utils.atomic_open({str(target)!r}) as handle:
    handle.write(b"from the hook")
return "written"
''', "import requests.utils"))
    refused(result)  # the language layer denies the helper; the jail has no such path
    assert not target.exists()
    assert os.listdir(world_dir) == []


def test_a_raw_ssl_context_from_urllib3_is_refused_on_use(run):
    result = run(hook('''
context = create_urllib3_context()
return context.load_verify_locations("/etc/passwd")
''', "from requests.packages.urllib3.util.ssl_ import create_urllib3_context"))
    refused(result, "urllib3.util.ssl_")  # an undeclared module, by its real name


# -- the escapes that worked: each ran arbitrary unrestricted Python in the hook process

PYDANTIC_FIELDINFO_EVAL = '''
field = vonage_users.User.model_fields["id"]
code = ("[c for c in ().__class__.__base__.__subclasses__() "
        "if c.__name__ == 'BuiltinImporter'][0].load_module('posix').getuid()")
built = field.from_annotation(code)
built.apply_typevars_map(None, {})
return built.annotation
'''

PYDANTIC_VALIDATE_CALL_EVAL = '''
def f(x: "[c for c in ().__class__.__base__.__subclasses__() "
         "if c.__name__ == 'BuiltinImporter'][0].load_module('posix').getuid()"):
    return x
return vonage_account.account.validate_call(f)(1)
'''

PYDANTIC_PICKLE = '''
payload = "cposix\\nsystem\\n(Vtrue\\ntR.".encode("latin-1")
return vonage_sms.SmsMessage.parse_raw(payload, proto="pickle", allow_pickle=True)
'''

ENUM_GLOBALS = '''
E = enum.Enum("E", [("STDLIB_MODULES", "os posix sys")],
              module="hookengine.sandbox.policy", type=str)
enum.global_enum(E)
import os
return os.getuid()
'''


@pytest.mark.parametrize("name, body, imports, fragment", [
    ("pydantic FieldInfo eval", PYDANTIC_FIELDINFO_EVAL, "import vonage_users",
     "FieldInfo object from the module 'pydantic.fields'"),
    ("pydantic validate_call eval", PYDANTIC_VALIDATE_CALL_EVAL, "import vonage_account.account",
     "module 'pydantic.validate_call_decorator'"),
    ("pydantic parse_raw pickle", PYDANTIC_PICKLE, "import vonage_sms",
     "module 'pydantic.main'"),
    ("enum global_enum", ENUM_GLOBALS, "import enum", "No module named 'enum'"),
])
def test_code_from_data_escapes_are_closed(run, name, body, imports, fragment):
    result = run(hook(body, imports))
    refused(result, fragment)
    assert result.result is None
