"""Escapes through the Python language itself: dunders, frames, format strings, computed
names, source-text tricks, guard shadowing, exception internals, BaseException subclasses.

Each hook either fails to compile, fails with a refusal naming the trick, or runs without
reaching anything it should not (then its result shows exactly what it did reach)."""

import pytest

from attacklib import hook, refused


COMPILE_REFUSED = {
    "subclasses walk": ("return ().__class__.__base__.__subclasses__()", "__class__"),
    "function globals": ("def f():\n    pass\nreturn f.__globals__", "__globals__"),
    "function defaults": ("def f(x=1):\n    pass\nreturn f.__defaults__", "__defaults__"),
    "generator frame": ("g = (x for x in [1])\nreturn g.gi_frame.f_back.f_globals", "gi_frame"),
    "generator code": ("g = (x for x in [1])\nreturn g.gi_code", "gi_code"),
    "traceback frame": ("try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__",
                        "__traceback__"),
    "tb_frame": ("try:\n    1 / 0\nexcept Exception as e:\n    tb = e.args\n"
                 "    return tb.tb_frame.f_globals", "tb_frame"),
    "exception context": ("try:\n    1 / 0\nexcept Exception as e:\n    return e.__context__",
                          "__context__"),
    "builtins by name": ("return __builtins__", "__builtins__"),
    "__import__ by name": ("return __import__('os')", "__import__"),
    "eval": ("return eval('1 + 1')", "Eval calls are not allowed"),
    "exec": ("exec('x = 1')\nreturn 1", "Exec calls are not allowed"),
    "breakpoint": ("breakpoint()\nreturn 1", "breakpoint"),
    "shadow _getattr_": ("_getattr_ = lambda o, n: 1\nreturn 1", "_getattr_"),
    "shadow _write_ with walrus": ("(_write_ := lambda o: o)\nreturn 1", "_write_"),
    "shadow _write_ positional-only": (
        "def f(_write_=lambda o: o, /):\n    return 1\nreturn f()", "_write_"),
    "shadow _getiter_ in except": (
        "try:\n    1 / 0\nexcept Exception as _getiter_:\n    pass\nreturn 1", "_getiter_"),
    "global guard name": ("global _getitem_\n_getitem_ = 1\nreturn 1", "_getitem_"),
    "dunder method": ("class C:\n    def __getattr__(self, n):\n        return 1\nreturn 1",
                      "__getattr__"),
    "metaclass": ("class C(metaclass=int):\n    pass\nreturn 1", "metaclass"),
    "NFKC dunder": ("return ()._\uff3fclass_\uff3f", "__class__"),
    "NFKC exec": ("\U0001d626\U0001d639\U0001d626\U0001d624('x = 1')\nreturn 1",
                  "Exec calls are not allowed"),
    "except star": ("try:\n    pass\nexcept* ValueError:\n    pass\nreturn 1", "TryStar"),
    "match class pattern": ("match 1:\n    case object(__class__=c):\n        return c",
                            "Match"),
    "async": ("async def f():\n    pass\nreturn 1", "AsyncFunctionDef"),
}


@pytest.mark.parametrize("name", sorted(COMPILE_REFUSED))
def test_refused_at_compile_time(run, name):
    body, fragment = COMPILE_REFUSED[name]
    refused(run(hook(body)), "CompileError", fragment)


def test_coding_cookie_is_not_honoured(run):
    # As bytes, utf-7 would turn this into `return ().__class__`; the sandbox takes text.
    source = "# coding: utf-7\n" + hook("return ()._+AF8-class+AF8AXw-")
    result = run(source)
    assert result.status == "error"
    assert result.error["name"] in ("CompileError", "AttributeError")
    assert "class" not in str(result.result)


MISSING_BUILTINS = ["getattr", "vars", "dir", "type", "object", "globals", "locals", "compile",
                    "open", "input", "memoryview", "super", "classmethod", "staticmethod",
                    "property", "help", "exit", "quit"]


@pytest.mark.parametrize("name", MISSING_BUILTINS)
def test_dangerous_builtins_are_not_defined(run, name):
    refused(run(hook(f"return {name}")), "NameError", repr(name))


@pytest.mark.parametrize("call, expected", [
    ('hasattr(context, "__class__")', False),
    ('hasattr(context, "gi_frame")', False),
    ('hasattr(recipient, "format")', "NotImplementedError"),
    ('hasattr(recipient, "upper")', True),
])
def test_hasattr_goes_through_the_guard(run, call, expected):
    result = run(hook(f"try:\n    return {call}\nexcept NotImplementedError:\n"
                      "    return 'NotImplementedError'"))
    assert result.status == "success", result.error
    assert result.result == expected


@pytest.mark.parametrize("target", ["context", "Thing()", "Thing", "recipient", "[1]"])
def test_setattr_with_computed_dunder_names_is_refused(run, target):
    result = run(hook(f'''
try:
    setattr({target}, "__class__", Thing)
except (TypeError, AttributeError) as error:
    return "refused"
return "changed"
''', imports="class Thing:\n    pass\n"))
    assert result.status == "success", result.error
    assert result.result == "refused"


@pytest.mark.parametrize("expression", [
    '"{0.__class__.__mro__}".format(recipient)',
    '"{c.__class__}".format_map({"c": recipient})',
    'str.format("{0.__class__}", recipient)',
    'str.format_map("{0.__class__}", [recipient])',
    '"{0.__init__.__globals__}".format(Client)',
])
def test_format_string_traversal_is_refused(run, expression):
    result = run(hook(f"return {expression}", imports="from twilio.rest import Client"))
    refused(result, "NotImplementedError", "format")


def test_string_formatter_is_out_of_reach(run):
    refused(run(hook("return string.Formatter().get_field('0.__class__', [1], {})",
                     imports="import string")), "ImportError", "'string'")


def test_percent_formatting_is_fine(run):
    result = run(hook('return "%s-%d-%r" % (recipient, 7, context.code)'))
    assert result.status == "success", result.error
    assert result.result == "+15551234567-7-'123456'"


def test_attribute_error_obj_does_not_hand_back_raw_modules(run):
    result = run(hook('''
try:
    twilio.http.no_such_name
except AttributeError as error:
    leaked = error.obj
try:
    return ["leaked", repr(leaked), leaked.os]
except AttributeError as error:
    return ["stopped", repr(leaked), str(error)]
''', imports="import twilio"))
    assert result.status == "success", result.error
    verdict, leaked, reason = result.result
    assert verdict == "stopped"
    assert leaked in ("None", "<module 'twilio.http' (hook view)>")
    assert "module 'os'" in reason or "has no attribute" in reason


def test_attribute_error_from_a_library_is_re_raised_fresh(run):
    result = run(hook('''
session = requests.Session()
try:
    session.no_such_attribute
except AttributeError as error:
    return [repr(error.obj), error.name]
''', imports="import requests"))
    assert result.status == "success", result.error
    assert result.result == ["None", None]


@pytest.mark.parametrize("exception", ["SystemExit(0)", "KeyboardInterrupt()",
                                       "GeneratorExit()", "BaseException('x')"])
def test_base_exceptions_raised_by_the_hook_are_hook_errors(run, exception):
    name = exception.split("(")[0]
    result = run(hook(f"raise {exception}"))
    assert result.status == "error"
    assert result.error["name"] == name
    assert "hook.py" in result.error["stack"]


@pytest.mark.parametrize("exception", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_base_exceptions_can_be_caught_by_the_hook(run, exception):
    result = run(hook(f"try:\n    raise {exception}()\nexcept {exception}:\n"
                      "    return 'caught'"))
    assert result.status == "success", result.error
    assert result.result == "caught"


GENERATOR = '''
def gen():
    try:
        yield 1
    finally:
        raise SystemExit("from a finally")
g = gen()
for value in g:
    break
'''


def test_generator_exit_handlers_cannot_end_the_engine(run):
    # Closed by garbage collection: the SystemExit is "ignored" into the hook's stderr log.
    result = run(hook(GENERATOR + "return 'after'"))
    assert result.status == "success", result.error
    assert result.result == "after"
    stderr = [line["message"] for line in result.logs if line["stream"] == "stderr"]
    assert "SystemExit: from a finally" in stderr
    assert not any("hookengine" in line or "site-packages" in line for line in stderr)
    # Closed explicitly: the SystemExit is the hook's own error.
    result = run(hook(GENERATOR + "g.close()\nreturn 'after'"))
    assert result.status == "error"
    assert (result.error["name"], result.error["message"]) == ("SystemExit", "from a finally")


def test_enum_functional_api_cannot_rewrite_engine_globals(run):
    # enum.global_enum(Enum(..., module="hookengine.sandbox.policy", type=str)) used to
    # replace the policy's STDLIB_MODULES and so allow `import os`.
    result = run(hook('''
E = enum.Enum("E", [("STDLIB_MODULES", "os posix sys")],
              module="hookengine.sandbox.policy", type=str)
enum.global_enum(E)
return 1
''', imports="import enum"))
    refused(result, "ImportError", "'enum'")
    result = run(hook('''
base = vonage_sms.SmsMessage.mro()
import os
return 1
''', imports="import vonage_sms"))
    refused(result, "ImportError", "'os'")


@pytest.mark.parametrize("statement, fragment", [
    ("import _strptime", "CompileError"),
    ("from _strptime import _strptime_time as f", "CompileError"),
    ("from _strptime import TimeRE as f", "ImportError"),
])
def test_the_c_level_import_exception_is_not_a_hook_import(run, statement, fragment):
    # time/datetime.strptime import _strptime from C through the hook's __import__; hook
    # code itself still cannot import it.
    refused(run(f"{statement}\ndef send_phone_message(recipient, text, context):\n"
                "    return 1\n"), fragment, "_strptime")
    result = run(hook('return str(datetime.datetime.strptime("2026-01-02", "%Y-%m-%d"))',
                      imports="import datetime"))
    assert result.status == "success", result.error
    assert result.result == "2026-01-02 00:00:00"
