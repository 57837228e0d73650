"""The language layer: RestrictedPython compile, guards, module proxies and hook builtins."""

from __future__ import annotations

import ast
import builtins
import collections
import collections.abc
import importlib
import inspect
import operator
import re
import sys
import types
from dataclasses import dataclass
from typing import NamedTuple

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (full_write_guard, guarded_iter_unpack_sequence,
                                     guarded_unpack_sequence, safer_getattr_raise)

from hookengine.sandbox.problems import LINE_BREAK, Problem, at_node, line_number

# Harmless standard-library modules any hook may import (each pure computation, no I/O).
STDLIB_MODULES = frozenset({
    "json", "re", "datetime", "math", "hashlib", "hmac", "base64", "time", "uuid",
    "random", "secrets", "decimal", "fractions", "statistics", "calendar", "zoneinfo",
    "textwrap", "unicodedata", "binascii", "html", "urllib.parse", "ipaddress",
})

# A callable or class defined in one of these modules is never handed to a hook, however it
# was reached: they touch the OS, the interpreter, files or code objects, or look attributes
# up in C where the guards cannot see (operator.attrgetter, string.Formatter, logging's
# '{'-style formatter). Allowlisted modules above are matched first by exact name.
DENIED_MODULE_ROOTS = frozenset({
    "os", "posix", "nt", "posixpath", "sys", "subprocess", "_posixsubprocess", "io", "_io",
    "codecs", "_codecs", "ctypes", "_ctypes", "pickle", "_pickle", "copyreg", "marshal",
    "importlib", "_imp", "imp", "pkgutil", "runpy", "zipimport", "socket", "_socket", "ssl",
    "_ssl", "select", "selectors", "shutil", "gc", "inspect", "signal", "_signal",
    "threading", "_thread", "multiprocessing", "_multiprocessing", "concurrent", "asyncio",
    "pty", "tty", "termios", "resource", "fcntl", "mmap", "code", "codeop", "types", "operator",
    "_operator", "functools", "_functools", "tempfile", "glob", "pathlib", "fileinput",
    "linecache", "tokenize", "logging", "string", "_string", "ast", "_ast", "dis", "sysconfig",
    "site", "platform", "webbrowser", "zipfile", "tarfile", "shelve", "dbm", "sqlite3",
    "_sqlite3", "traceback", "faulthandler", "tracemalloc", "weakref", "_weakref", "atexit",
    "builtins", "pydoc", "http.server", "urllib.request", "ftplib", "smtplib", "telnetlib",
    "syslog", "grp", "pwd", "spwd", "crypt",
    # Reached through the SDKs' object graphs, and each turns data into code or engine state:
    # enum's functional API takes module= and global_enum() then writes the members into
    # that module's globals (this file's allowlists included); pydantic evaluates string
    # annotations with eval() (FieldInfo.apply_typevars_map, validate_call on a hook's
    # function) and unpickles (BaseModel.parse_raw(..., allow_pickle=True)); typing builds
    # the ForwardRefs those evaluate.
    "enum", "pydantic", "pydantic_core", "typing", "typing_extensions",
    # warnings.warn(..., stacklevel=n) (twilio.rest.accounts.warn) prints engine frames'
    # files and source lines into the hook's log and writes to their modules' globals.
    "warnings", "_warnings",
    # Command-line parsers: argparse.FileType(mode)(path) is open(), and each parses argv.
    "argparse", "optparse", "getopt", "click", "typer", "docopt", "fire",
})

# Builtins that must never reach a hook even though they live in `builtins`.
DENIED_BUILTINS = frozenset(id(f) for f in (
    builtins.open, builtins.exec, builtins.eval, builtins.compile, builtins.__import__,
    builtins.getattr, builtins.setattr, builtins.delattr, builtins.globals, builtins.locals,
    builtins.vars, builtins.dir, builtins.input, builtins.breakpoint, builtins.help,
    builtins.memoryview, builtins.type, builtins.object, builtins.super, builtins.classmethod,
    builtins.staticmethod, builtins.property, builtins.__build_class__,
))

# Modules the standard library imports lazily from C while a hook calls it.
C_LEVEL_IMPORTS = frozenset({"_strptime"})

# A module is judged by its real name (`__name__`), never by the name it was asked for:
# `requests.packages.charset_normalizer` is `charset_normalizer`, which no hook declares.
# Command-line modules of any package are refused whatever their package: a name part below,
# a module that holds a command-line parser library, or a module named here.
COMMAND_LINE_PARTS = frozenset({"__main__", "cli"})
COMMAND_LINE_LIBRARIES = frozenset({"argparse", "optparse", "getopt", "click", "typer", "docopt",
                                    "fire"})  # each also in DENIED_MODULE_ROOTS
COMMAND_LINE_MODULES = {
    "requests.help": "is requests' bug-report command (`python -m requests.help`), which "
                     "reports the host's platform and libraries",
    "jwt.help": "is PyJWT's bug-report command (`python -m jwt.help`), which reports the "
                "host's platform and libraries",
}
# Parents of dotted allowlisted modules (`urllib` of `urllib.parse`): `import urllib.parse`
# binds `urllib`, whose attributes are then each judged like any module.
STDLIB_PARENTS = frozenset(name.rsplit(".", 1)[0] for name in STDLIB_MODULES if "." in name)

# Callables of allowed modules that act on the host rather than on data: each opens files by
# path, writes files, changes the environment or runs programs. A hook is refused them
# however it reaches them (module attribute, instance method, alias module), with the reason.
SIDE_EFFECT_HELPERS = {
    "requests.utils.atomic_open": "creates or replaces files",
    "requests.utils.extract_zipped_paths": "reads zip archives by path and writes what they "
                                           "hold to files",
    "requests.utils.set_environ": "changes the process environment",
    "requests.utils.get_netrc_auth": "reads the netrc file that an environment variable or the "
                                     "home directory names",
    "charset_normalizer.api.from_path": "reads files by path",
    "charset_normalizer.api.is_binary": "reads files by path",
    "urllib3.util.connection.create_connection": "resolves names and connects by itself",
    "vonage_http_client.http_client.HttpClient.download_file_stream": "writes files",
    "vonage_voice.voice.Voice.download_recording": "writes files",
    "jwt.jwks_client.PyJWKClient": "fetches key sets with urllib, file:// URLs included",
    "zoneinfo.reset_tzpath": "changes the directories time-zone files are read from",
    "base64.main": "is a command-line entry point that reads the files named on its command "
                   "line",
    "calendar.main": "is a command-line entry point",
}

# Callables a hook may use, but not with an argument that names a file on the host: a CA
# bundle, a client certificate or a private key is read from wherever a string points.
# {callable: parameters}; what each parameter may hold is in PATH_PARAMETERS.
_REQUESTS_CALLS = ("request", "get", "options", "head", "post", "put", "patch", "delete")
_TLS_FILES = ("ca_certs", "ca_cert_dir", "cert_file", "key_file")
PATH_ARGUMENTS = {
    **{f"requests.api.{name}": ("verify", "cert") for name in _REQUESTS_CALLS},
    **{f"requests.sessions.Session.{name}": ("verify", "cert") for name in _REQUESTS_CALLS},
    "requests.sessions.Session.send": ("verify", "cert"),
    "requests.sessions.Session.merge_environment_settings": ("verify", "cert"),
    "requests.adapters.HTTPAdapter.send": ("verify", "cert"),
    "requests.adapters.HTTPAdapter.cert_verify": ("verify", "cert"),
    "requests.adapters.HTTPAdapter.build_connection_pool_key_attributes": ("verify", "cert"),
    "requests.adapters.HTTPAdapter.get_connection_with_tls_context": ("verify", "cert"),
    "requests.adapters.HTTPAdapter.init_poolmanager": _TLS_FILES,
    "requests.adapters.HTTPAdapter.proxy_manager_for": _TLS_FILES,
    "urllib3.poolmanager.PoolManager": _TLS_FILES,
    "urllib3.poolmanager.ProxyManager": _TLS_FILES,
    "urllib3.poolmanager.proxy_from_url": _TLS_FILES,
    "urllib3.poolmanager.PoolManager.connection_from_host": ("pool_kwargs",),
    "urllib3.poolmanager.PoolManager.connection_from_url": ("pool_kwargs",),
    "urllib3.poolmanager.PoolManager.connection_from_context": ("request_context",),
    "urllib3.poolmanager.PoolManager.connection_from_pool_key": ("request_context",),
    "urllib3.connectionpool.HTTPSConnectionPool": _TLS_FILES,
    "urllib3.connectionpool.connection_from_url": _TLS_FILES,
    "urllib3.connection.HTTPSConnection": _TLS_FILES,
    "urllib3.connection.HTTPSConnection.set_cert": _TLS_FILES,
    "vonage_http_client.auth.Auth": ("private_key",),
    "vonage_jwt.jwt.JwtClient": ("private_key",),
}

# Mutable settings of library objects that a hook could fill with file names for the library
# to read later (urllib3 builds every new connection pool from them).
DENIED_ATTRIBUTES = {
    "connection_pool_kw": "holds urllib3's connection settings, TLS certificate and key files "
                          "included",
    "conn_kw": "holds urllib3's connection settings, TLS certificate and key files included",
}

# Methods of containers that take items in from an iterable or hand one out: the guard wraps
# them so those items pass the same check as `for` and `x[i]`. (class defining the method,
# name) -> how: "iterables" (each positional argument is an iterable of items), "first" (only
# the first one is), "pairs" (a mapping or key-value pairs), "counts" (a mapping or items, as
# Counter takes), "result" (the return value is an item), "key" (the key function sees items).
_abc = collections.abc
_SET_INTAKE = ("union", "intersection", "symmetric_difference")
_MAPPING_OUT = ("get", "pop", "popitem", "setdefault")
CONTAINER_METHODS = {
    **{(cls, "extend"): "iterables" for cls in (list, bytearray, collections.deque,
                                                collections.UserList, _abc.MutableSequence)},
    (collections.deque, "extendleft"): "iterables",
    **{(cls, name): "iterables" for cls in (set, frozenset) for name in _SET_INTAKE},
    **{(set, f"{name}_update"): "iterables" for name in ("intersection", "symmetric_difference")},
    (set, "update"): "iterables",
    **{(cls, "update"): "pairs" for cls in (dict, collections.OrderedDict, _abc.MutableMapping)},
    **{(cls, "fromkeys"): "first" for cls in (dict, collections.OrderedDict)},
    (collections.Counter, "update"): "counts",
    (collections.Counter, "subtract"): "counts",
    **{(cls, "pop"): "result" for cls in (list, set, collections.deque, collections.UserList,
                                          _abc.MutableSequence, _abc.MutableSet)},
    (collections.deque, "popleft"): "result",
    **{(cls, name): "result" for cls in (dict, collections.OrderedDict, collections.ChainMap,
                                         _abc.MutableMapping) for name in _MAPPING_OUT},
    **{(cls, "get"): "result" for cls in (_abc.Mapping, types.MappingProxyType)},
    (list, "sort"): "key",
    (collections.UserList, "sort"): "key",
}
_CONTAINER_METHOD_NAMES = frozenset(name for _, name in CONTAINER_METHODS)

# Values the guard passes as they are (their items, if any, are checked when taken out).
PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, complex, list, tuple, dict,
                         set, frozenset, range, slice})

RAW_OBJECT_TYPES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
                    types.CellType)


class AccessDenied(AttributeError):
    """Raised fresh (no chained context, no `.obj`) when a hook reaches for something refused."""

    def __init__(self, message: str):
        super().__init__(message)
        self.__suppress_context__ = True


def ImportDenied(message: str) -> ImportError:
    """A plain ImportError (what DESIGN promises hooks) naming the module and saying why."""
    error = ImportError(message)
    error.__suppress_context__ = True
    return error


@dataclass(frozen=True)
class CompileResult:
    code: types.CodeType | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[str, ...]:
        """The problems' text ("Line N: ..."), as a refused save and a draft run list them."""
        return tuple(map(str, self.problems))


def compile_hook(source: str, filename: str, max_bytes: int, max_depth: int,
                 entry_function: str | None = None) -> CompileResult:
    """Compile under RestrictedPython's transformer (plus HookTransformer's guarded
    unpacking); collect every problem, with where it is."""
    def refused(message: str, line: int = 1) -> CompileResult:
        return CompileResult(None, (Problem(line=line, message=message,
                                            source=Problem.COMPILE),))

    if not isinstance(source, str):
        return refused("The script must be text.")
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return refused(f"The script is {size} bytes; the limit is {max_bytes}.")
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as error:
        # A NUL byte anywhere is refused before parsing, with no line to name.
        where = f"Line {error.lineno}: " if error.lineno else ""
        return CompileResult(None, (Problem.of_syntax_error(
            f"{where}SyntaxError: {error.msg}", error),))
    except (RecursionError, MemoryError, ValueError) as error:
        return refused(f"The script cannot be parsed: {type(error).__name__} "
                       "(nested too deeply?)")
    depth, line = _ast_depth(tree)
    if depth > max_depth:
        return refused(f"Line {line}: the script nests {depth} levels deep; the limit is "
                       f"{max_depth}.", line)
    problems = []
    if entry_function and not any(isinstance(node, ast.FunctionDef)
                                  and node.name == entry_function for node in tree.body):
        problems.append(Problem(line=1, message=f"Line 1: the script must define a top-level "
                                f"function {entry_function}(...).",
                                source=Problem.COMPILE))
    try:
        result = compile_restricted_exec(tree, filename, policy=HookTransformer)
    except (RecursionError, MemoryError) as error:
        return refused(f"The script cannot be compiled: {type(error).__name__}")
    lines = LINE_BREAK.split(source)
    problems = [_located(error, lines) for error in result.errors] + problems
    return CompileResult(None if problems else result.code, tuple(problems))


class _Flagged(NamedTuple):
    """A RestrictedPython error in its own words, with the node and rule it is about."""

    text: str
    node: ast.AST
    info: str


def _located(error: _Flagged | str, lines: list[str]) -> Problem:
    if isinstance(error, _Flagged):
        return at_node(error.text, error.info, error.node, lines)
    # Not reported through HookTransformer.error (none is today): the line its text names.
    cited = re.match(r"Line (\d+):", error)
    return Problem(line=line_number(int(cited.group(1)) if cited else None), message=error,
                   source=Problem.COMPILE)


class HookTransformer(RestrictingNodeTransformer):
    """RestrictedPython's checks, and unpacking guarded like iteration: `*x` (in a call, a
    list, tuple or set display) becomes `*_getiter_(x)`, and `**m` (in a call or a dict
    display) becomes `**_getmapping_(m)`, so an item the guard refuses through `x[0]` or a
    `for` loop does not come out raw through `f(*x)` or `[*x]`."""

    def error(self, node: ast.AST, info: str) -> None:
        """Record a broken rule as RestrictedPython words it, keeping the node it is about
        (compile_hook turns it into a Problem with the columns)."""
        super().error(node, info)
        self.errors[-1] = _Flagged(self.errors[-1], node, info)

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):  # a target (`a, *b = x`) is _unpack_sequence_'s
            node.value = _guard_call("_getiter_", node.value)
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        node = self.node_contents_visit(node)
        node.values = [_guard_call("_getmapping_", value) if key is None else value
                       for key, value in zip(node.keys, node.values)]
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        node = self.node_contents_visit(node)
        if node.arg is None:
            node.value = _guard_call("_getmapping_", node.value)
        return node


def _guard_call(guard: str, value: ast.expr) -> ast.Call:
    call = ast.Call(func=ast.Name(guard, ast.Load()), args=[value], keywords=[])
    ast.copy_location(call.func, value)
    return ast.copy_location(call, value)


def _ast_depth(tree: ast.AST) -> tuple[int, int]:
    """Deepest nesting and its line, walked without recursion (a deep tree is the attack)."""
    deepest, line = 0, 1
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, line = depth, getattr(node, "lineno", line)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, line


class ModuleProxy:
    """A module as a hook sees it: public names only, every value passed through the guard."""

    __slots__ = ("_ModuleProxy__module", "_ModuleProxy__guard")

    def __init__(self, module: types.ModuleType, guard: "Guard"):
        object.__setattr__(self, "_ModuleProxy__module", module)
        object.__setattr__(self, "_ModuleProxy__guard", guard)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AccessDenied(f'"{name}" is an invalid attribute name because it starts '
                               'with "_"')
        module = self.__module
        try:
            value = getattr(module, name)
        except AttributeError:
            value = self.__guard.submodule(module, name)
        return self.__guard.check(value, f"{module.__name__}.{name}")

    def __setattr__(self, name, value):
        raise AccessDenied("modules are read-only in hooks")

    __delattr__ = __setattr__

    def __dir__(self):
        return [n for n in dir(self.__module) if not n.startswith("_")]

    def __repr__(self):
        return f"<module {self.__module.__name__!r} (hook view)>"


def real_module_name(name: str) -> str:
    """The real name (`__name__`) of the module `import name` gives or would give: the
    longest prefix already in sys.modules is resolved, so aliases such as
    `requests.packages.urllib3.util` become `urllib3.util`, loaded or not."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None:
            real = getattr(module, "__name__", None)
            return ".".join([real, *parts[end:]]) if isinstance(real, str) else name
    return name


def _holds_command_line(module: types.ModuleType) -> bool:
    """Whether the module keeps a command-line parser library (or a piece of one) at hand."""
    verdict = _COMMAND_LINE_VERDICTS.get(module.__name__)
    if verdict is None or verdict[0] is not module:
        holds = False
        for value in list(vars(module).values()):
            if isinstance(value, types.ModuleType):
                origin = value.__name__
            elif isinstance(value, (type, types.FunctionType)):
                origin = value.__module__
            else:
                continue
            if isinstance(origin, str) and origin.split(".")[0] in COMMAND_LINE_LIBRARIES:
                holds = True
                break
        verdict = _COMMAND_LINE_VERDICTS[module.__name__] = (module, holds)
    return verdict[1]


_COMMAND_LINE_VERDICTS: dict[str, tuple[types.ModuleType, bool]] = {}


class _Refused:
    """An entry of SIDE_EFFECT_HELPERS: a callable no hook may have."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        self.target = None

    def bind(self, target) -> None:
        self.target = target

    def apply(self, value, where: str):
        raise AccessDenied(f"{self.name} is refused to hooks: it {self.reason}")


def _flag(value) -> bool:
    return value is None or isinstance(value, bool)


def _nothing(value) -> bool:
    return value is None


_KEY_FILE_NAME = re.compile(r"[.][a-zA-Z0-9_]+$")  # what vonage_jwt opens as a key file


def _pem_text(value) -> bool:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value is None or (isinstance(value, str) and "-----BEGIN" in value
                             and not _KEY_FILE_NAME.search(value))


def _no_tls_files(value) -> bool:
    return value is None or (isinstance(value, dict)
                             and all(dict.get(value, name) is None for name in _TLS_FILES))


# What a hook may pass for each parameter PATH_ARGUMENTS names, and how the refusal says it.
PATH_PARAMETERS = {
    "verify": (_flag, "True or False (a string names a CA bundle file)"),
    "cert": (_nothing, "None (it names client certificate and key files)"),
    **{name: (_nothing, "None (it names a file)") for name in _TLS_FILES},
    "private_key": (_pem_text, "the key's PEM text (another string is read as a file path)"),
    "pool_kwargs": (_no_tls_files, f"settings without {', '.join(_TLS_FILES)} (they name "
                                   "files)"),
    "request_context": (_no_tls_files, f"settings without {', '.join(_TLS_FILES)} (they "
                                       "name files)"),
}


class _PathArguments:
    """An entry of PATH_ARGUMENTS: the callable is handed out wrapped in an argument check."""

    def __init__(self, name: str, params: tuple[str, ...]):
        self.name, self.params = name, params
        self.positions: dict[str, int] = {}
        self.target = self.wrapper = None

    def bind(self, target) -> None:
        self.target = target
        try:
            parameters = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            return
        positional = [p.name for p in parameters
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.positions = {p: positional.index(p) for p in self.params if p in positional}

    def apply(self, value, where: str):
        if value is self.target:  # a function, a class, or a method read from its class
            if self.wrapper is None:
                self.wrapper = self._wrap(value, 0)
            return self.wrapper
        return self._wrap(value, 1)  # a bound method: `self` is already given

    def _wrap(self, function, skipped: int):
        def checked(*args, **kwargs):
            self.check(args, kwargs, skipped)
            return function(*args, **kwargs)
        checked.__name__ = checked.__qualname__ = self.name.rsplit(".", 1)[-1]
        return checked

    def check(self, args: tuple, kwargs: dict, skipped: int) -> None:
        for param in self.params:
            if param in kwargs:
                value = kwargs[param]
            else:
                index = self.positions.get(param, -1) - skipped
                if not 0 <= index < len(args):
                    continue
                value = args[index]
            allowed, what = PATH_PARAMETERS[param]
            if not allowed(value):
                raise AccessDenied(f"{self.name}(): {param}={_brief(value)} is refused; "
                                   f"hooks may pass only {what}")


def _brief(value) -> str:
    if isinstance(value, (str, bytes)):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    return f"<{type(value).__name__}>"


# The tables above, bound to the objects they name once their modules are loaded: id of the
# function or class -> entry (the entry holds the object, so the id stays its own).
SPECIAL_CALLABLES: dict[int, _Refused | _PathArguments] = {}
_PENDING: dict[str, _Refused | _PathArguments] = {
    **{name: _Refused(name, reason) for name, reason in SIDE_EFFECT_HELPERS.items()},
    **{name: _PathArguments(name, params) for name, params in PATH_ARGUMENTS.items()},
}
_bound_with = 0  # len(sys.modules) at the last binding


def bind_tables() -> None:
    """Find what the tables name among the modules loaded so far; nothing is imported.

    The zygote calls this once its packages are warm, so that children share the bound
    tables; a child calls it again whenever modules were loaded since (cheap otherwise)."""
    global _bound_with
    if _bound_with == len(sys.modules):
        return
    _bound_with = len(sys.modules)
    for name, entry in list(_PENDING.items()):
        target = _loaded_object(name)
        if target is not None:
            entry.bind(target)
            SPECIAL_CALLABLES[id(target)] = entry
            del _PENDING[name]


def guard_replacement(original, replacement) -> None:
    """`replacement` now stands where `original` was (the egress host map wraps
    HTTPAdapter.send): it gets the same checks, read with `original`'s parameter positions,
    so a path argument cannot slip past under the new function."""
    bind_tables()
    entry = SPECIAL_CALLABLES.get(id(original))
    if isinstance(entry, _PathArguments):
        alias = _PathArguments(entry.name, entry.params)
        alias.target, alias.positions = replacement, dict(entry.positions)
        SPECIAL_CALLABLES[id(replacement)] = alias
    elif entry is not None:
        SPECIAL_CALLABLES[id(replacement)] = entry


def _loaded_object(name: str):
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        value = sys.modules.get(".".join(parts[:end]))
        if value is None:
            continue
        try:
            for part in parts[end:]:
                value = getattr(value, part)
        except AttributeError:  # not in this version, or its submodule is not loaded yet
            return None
        return value.__func__ if type(value) is types.MethodType else value
    return None


def _kinds_for(cls: type) -> dict[str, tuple[str, str]] | None:
    """{method name: (how to guard it, what its items are called)} for instances of `cls`;
    None for metaclasses (their instances are classes: `OrderedDict.get(d, key)` is looked
    up on the class itself)."""
    kinds = _CONTAINER_KINDS.get(cls, _UNSEEN)
    if kinds is _UNSEEN:
        kinds = None if issubclass(cls, type) else {}
        for name in _CONTAINER_METHOD_NAMES if kinds is not None else ():
            for base in cls.__mro__:
                if name in base.__dict__:
                    if (base, name) in CONTAINER_METHODS:
                        kinds[name] = (CONTAINER_METHODS[base, name],
                                       f"an item of {cls.__name__}")
                    break
        _CONTAINER_KINDS[cls] = kinds
    return kinds


_CONTAINER_KINDS: dict[type, dict[str, tuple[str, str]] | None] = {}
_UNSEEN = object()
for _cls in (list, tuple, dict, set, frozenset, str, bytes, bytearray, int, float, bool,
             type(None), collections.deque, collections.OrderedDict, collections.defaultdict,
             collections.Counter, types.MappingProxyType, type):
    _kinds_for(_cls)


class Guard:
    """Decides what a hook may hold: allowed modules become proxies, the rest is refused."""

    def __init__(self, allowed_roots: frozenset[str]):
        self.allowed_roots = allowed_roots
        self._proxies: dict[str, tuple[types.ModuleType, ModuleProxy]] = {}
        bind_tables()

    # -- modules, judged by their real names

    def module_refusal(self, name: str) -> str | None:
        """Why the module really named `name` is not for hooks; None when it is."""
        parts = name.split(".")
        if not COMMAND_LINE_PARTS.isdisjoint(parts):
            return "it is a command-line entry point"
        if name in COMMAND_LINE_MODULES:
            return f"it {COMMAND_LINE_MODULES[name]}"
        if name in STDLIB_MODULES or name in STDLIB_PARENTS:
            return None
        if parts[0] in self.allowed_roots and not _denied(name):
            return None
        if _denied(name) or parts[0] in sys.stdlib_module_names:
            return "it is not on the sandbox's list of harmless standard-library modules"
        return ("it is not provided by a dependency the hook declares and the engine allows "
                "(declare it in the script's PEP 723 block or `dependencies`)")

    def proxy(self, module: types.ModuleType, where: str | None = None) -> ModuleProxy:
        """The hook's view of `module`, after judging the module itself (its `__name__`)."""
        name = module.__name__
        known = self._proxies.get(name)
        if known is not None and known[0] is module:
            return known[1]
        reason = self.module_refusal(name) if isinstance(name, str) else "it has no name"
        if reason is None and _holds_command_line(module):
            reason = "it is a command-line entry point (it holds a command-line parser)"
        if reason is not None:
            raise AccessDenied(f"{where or name} is the module {name!r}, which hooks may not "
                               f"use: {reason}")
        proxy = ModuleProxy(module, self)
        self._proxies[name] = (module, proxy)
        return proxy

    def load(self, name: str) -> types.ModuleType:
        """The module `name` names, judged by its real name, loaded under that name only
        (never as a fresh copy under an alias); ImportError saying why when refused."""
        real = real_module_name(name)
        reason = self.module_refusal(real)
        if reason is not None:
            raise ImportDenied(_import_refusal(name, real, reason, self.allowed_roots))
        module = sys.modules.get(real)
        if module is None:
            try:
                module = importlib.import_module(real)
            except ImportError:
                raise ImportDenied(f"No module named {name!r}") from None
            bind_tables()
        if not isinstance(module, types.ModuleType):
            raise ImportDenied(f"{name!r} is not a module, so hooks may not import it")
        try:
            self.proxy(module, name)
        except AccessDenied as error:
            raise ImportDenied(f"No module named {name!r} for hooks: {error}") from None
        return module

    def submodule(self, module: types.ModuleType, name: str):
        """`pkg.sub` for a submodule that is not loaded yet, judged like an import."""
        full = f"{module.__name__}.{name}"
        if getattr(module, "__path__", None) is None:
            raise AccessDenied(f"module {module.__name__!r} has no attribute {name!r}")
        reason = self.module_refusal(real_module_name(full))
        if reason is not None:
            raise AccessDenied(f"{full} is not available to hooks: {reason}")
        try:
            return self.load(full)
        except ImportError:
            raise AccessDenied(f"module {module.__name__!r} has no attribute {name!r}") from None

    # -- values

    def check(self, value, where: str):
        """Return `value` as a hook may hold it, or raise AccessDenied naming `where`."""
        if type(value) in PLAIN_TYPES:
            return value
        if isinstance(value, RAW_OBJECT_TYPES):
            if isinstance(value, types.ModuleType):
                return self.proxy(value, where)
            raise AccessDenied(f"{where} is a {type(value).__name__} object, which hooks may "
                               "not hold")
        if callable(value) and not isinstance(value, (ModuleProxy, ReadOnlyDict)):
            if id(value) in DENIED_BUILTINS:
                raise AccessDenied(f"{where} is the builtin "
                                   f"{getattr(value, '__name__', '?')}(), which hooks may not "
                                   "call")
            if _PENDING and _bound_with != len(sys.modules):
                bind_tables()  # the SDKs load some modules lazily, while a hook runs
            special = SPECIAL_CALLABLES.get(
                id(value.__func__ if type(value) is types.MethodType else value))
            if special is not None:
                return special.apply(value, where)
            origin = _module_of(value)
            if origin and origin not in STDLIB_MODULES and _denied(origin):
                raise AccessDenied(f"{where} comes from the module {origin!r}, which hooks "
                                   "may not use")
        elif not isinstance(value, (ModuleProxy, ReadOnlyDict)):
            # An instance of a denied module's class (a logging.Logger, os.environ, a file or
            # socket object) hands out its C methods, which carry no module to refuse.
            origin = type(value).__module__
            if origin != "builtins" and origin not in STDLIB_MODULES and _denied(origin):
                raise AccessDenied(f"{where} is a {type(value).__name__} object from the "
                                   f"module {origin!r}, which hooks may not use")
        return value

    # -- the guard functions RestrictedPython's generated code calls

    def getattr_(self, obj, name, default=None):
        obj = self._held(obj)
        if name in DENIED_ATTRIBUTES:
            raise AccessDenied(f"{type(obj).__name__}.{name} {DENIED_ATTRIBUTES[name]}, so "
                               "hooks may not read it")
        try:
            value = safer_getattr_raise(obj, name)
        except AccessDenied:
            raise
        except AttributeError as error:
            # A fresh error: the original's `.obj` and context would hand the object back.
            raise AttributeError(str(error)) from None
        cls = type(obj)
        kinds = _CONTAINER_KINDS.get(cls, _UNSEEN)
        if kinds is _UNSEEN:
            kinds = _kinds_for(cls)
        if kinds:
            spec = kinds.get(name)
            if spec is not None:
                return self._container_method(value, spec, False)
        elif kinds is None:  # `obj` is a class: `OrderedDict.get(d, key)` is guarded too
            spec = (_kinds_for(obj) or {}).get(name)
            if spec is not None:
                return self._container_method(value, spec,
                                              getattr(value, "__self__", None) is not obj)
        return self.check(value, f"{cls.__name__}.{name}")

    def getitem_(self, obj, key):
        obj = self._held(obj)
        if isinstance(key, str) and key.startswith("_") and not isinstance(obj, dict):
            raise AccessDenied(f'"{key}" is an invalid key because it starts with "_"')
        return self.check(obj[key], f"{type(obj).__name__}[{key!r}]")

    def getiter_(self, obj):
        if isinstance(obj, (str, bytes, range)):
            return iter(obj)
        return self._checked_iter(self._held(obj))

    def getmapping_(self, mapping) -> dict:
        """`**mapping` in a call or a dict display: keys and values are checked as items."""
        mapping = self._held(mapping)
        if not isinstance(mapping, dict) and not hasattr(type(mapping), "keys"):
            raise TypeError(f"argument after ** must be a mapping, not "
                            f"{type(mapping).__name__}")
        where = f"an item of {type(mapping).__name__}"
        return {self.check(key, where): self.check(value, where)
                for key, value in dict(mapping).items()}

    def inplacevar_(self, op: str, x, y):
        """`x op= y`; items entering a container this way are checked like iteration."""
        if op == "+=" and isinstance(x, (list, collections.deque, bytearray)):
            y = self._items(y)
        elif op == "|=" and isinstance(x, dict):
            y = self.pairs(y)
        elif op in ("|=", "&=", "^=") and isinstance(x, set) and isinstance(y, (set, frozenset)):
            y = set(self.getiter_(y))
        return INPLACE[op](x, y)

    def _held(self, obj):
        """A value the hook got from a call (not through a guard): check it before use."""
        if isinstance(obj, types.ModuleType) or not callable(obj):
            return self.check(obj, "a value returned by a call")
        return obj

    def _checked_iter(self, obj):
        for item in obj:
            yield self.check(item, f"an item of {type(obj).__name__}")

    def _items(self, iterable):
        return iterable if isinstance(iterable, (str, bytes, range)) else list(
            self.getiter_(iterable))

    def pairs(self, source):
        """What dict() and dict.update take: a mapping, or key-value pairs; items checked."""
        if hasattr(type(source), "keys"):
            return self.getmapping_(source)
        return [tuple(self.getiter_(pair)) for pair in self.getiter_(source)]

    def _counts(self, source):
        return self.getmapping_(source) if hasattr(type(source), "keys") else self._items(source)

    def _container_method(self, method, spec: tuple[str, str], unbound: bool):
        """`method` of a container, its items checked as they go in or come out."""
        kind, where = spec
        check = self.check
        if kind == "result":
            def guarded(*args, **kwargs):
                return check(method(*args, **kwargs), where)
        elif kind == "key":
            def guarded(*args, key=None, **kwargs):
                if key is not None:
                    kwargs["key"] = lambda item: key(check(item, where))
                return method(*args, **kwargs)
        else:
            convert = {"iterables": self._items, "first": self._items, "pairs": self.pairs,
                       "counts": self._counts}[kind]
            every = kind == "iterables"

            def guarded(*args, **kwargs):
                head, args = (args[:1], args[1:]) if unbound else ((), args)
                if every:
                    args = [convert(arg) for arg in args]
                elif args:
                    args = [convert(args[0]), *args[1:]]
                return method(*head, *args, **kwargs)
        return guarded

    def import_(self, name, globals=None, locals=None, fromlist=(), level=0):
        if name in C_LEVEL_IMPORTS and not fromlist and level == 0:
            # Imported by C code on the hook's behalf (time.strptime, datetime.strptime),
            # which then calls its private functions; hook code cannot name it (it starts
            # with "_"), so the raw module never reaches the hook.
            return importlib.import_module(name)
        if level != 0:
            raise ImportDenied("relative imports are not available to hooks")
        if not isinstance(name, str):
            raise ImportDenied(f"No module named {name!r}")
        module = self.load(name)
        for item in fromlist or ():
            if item == "*":
                raise ImportDenied("'from ... import *' is not available to hooks")
            try:
                self.check(getattr(module, item) if hasattr(module, item)
                           else self.submodule(module, item), f"{name}.{item}")
            except AttributeError as error:
                raise ImportDenied(f"cannot import {item!r} from {name!r}: {error}") from None
        if fromlist:
            return self.proxy(module, name)
        root = name.split(".")[0]
        return self.proxy(self.load(root), root)


def _import_refusal(name: str, real: str, reason: str, allowed_roots: frozenset[str]) -> str:
    allowed = ", ".join(sorted(allowed_roots | STDLIB_MODULES)) or "none"
    alias = f" (it is the module {real!r})" if real != name else ""
    return f"No module named {name!r} for hooks{alias}: {reason}. Importable: {allowed}."


def _module_of(value) -> str | None:
    module = getattr(value, "__module__", None)
    if module is None and isinstance(value, types.BuiltinFunctionType):
        owner = getattr(value, "__self__", None)
        module = getattr(owner, "__name__", None) if isinstance(owner, types.ModuleType) else None
    return module if isinstance(module, str) else None


def _denied(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in DENIED_MODULE_ROOTS for i in range(1, len(parts) + 1))


class AttributeDict(dict):
    """A dict whose public keys also read as attributes (`context.code`, `user.email`)."""

    __slots__ = ()
    what = "no field"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self.what} {name!r}") from None


class ReadOnlyDict(AttributeDict):
    """`context` and its parts: a dict read by key or attribute, refusing every change."""

    __slots__ = ()
    what = "context has no field"

    def _refuse(self, *args, **kwargs):
        raise TypeError("context is read-only")

    __setitem__ = __delitem__ = __setattr__ = __delattr__ = _refuse
    clear = pop = popitem = setdefault = update = __ior__ = _refuse

    @classmethod
    def freeze(cls, value):
        """Deep copy JSON data into read-only dicts and tuples."""
        if isinstance(value, dict):
            return cls({k: cls.freeze(v) for k, v in value.items()})
        if isinstance(value, list):
            return tuple(cls.freeze(v) for v in value)
        return value


class HookDict(AttributeDict):
    """A hook's own dict arguments (user, client): a plain dict also readable by attribute."""

    __slots__ = ()
    _guarded_writes = True  # full_write_guard lets hooks write to it like a dict

    @classmethod
    def wrap(cls, value):
        if isinstance(value, dict):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.wrap(v) for v in value]
        return value


INPLACE = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul,
           "/=": operator.itruediv, "//=": operator.ifloordiv, "%=": operator.imod,
           "**=": operator.ipow, "<<=": operator.ilshift, ">>=": operator.irshift,
           "&=": operator.iand, "^=": operator.ixor, "|=": operator.ior,
           "@=": operator.imatmul}


def build_builtins(guard: Guard, hook_errors: dict) -> dict:
    """safe_builtins plus guarded versions of the iterating builtins RestrictedPython dropped."""
    it = guard.getiter_
    hook_builtins = dict(safe_builtins)
    hook_builtins.update(
        list=lambda iterable=(): list(it(iterable)),
        tuple=lambda iterable=(): tuple(it(iterable)),
        set=lambda iterable=(): set(it(iterable)),
        frozenset=lambda iterable=(): frozenset(it(iterable)),
        dict=lambda *a, **kw: dict(*[guard.pairs(x) for x in a], **kw),
        sorted=lambda iterable, **kw: sorted(it(iterable), **kw),
        enumerate=lambda iterable, start=0: enumerate(it(iterable), start),
        zip=lambda *iterables: zip(*[it(x) for x in iterables]),
        map=lambda fn, *iterables: map(fn, *[it(x) for x in iterables]),
        filter=lambda fn, iterable: filter(fn, it(iterable)),
        reversed=lambda seq: list(reversed(list(it(seq)))),
        min=lambda *a, **kw: min(it(a[0]), **kw) if len(a) == 1 else min(*a, **kw),
        max=lambda *a, **kw: max(it(a[0]), **kw) if len(a) == 1 else max(*a, **kw),
        sum=lambda iterable, start=0: sum(it(iterable), start),
        any=lambda iterable: any(it(iterable)),
        all=lambda iterable: all(it(iterable)),
        bytes=lambda source=b"", *a: bytes(
            source if isinstance(source, (str, bytes, int)) else it(source), *a),
        hasattr=lambda obj, name: _has(guard, obj, name),
        __import__=guard.import_,  # IMPORT_NAME looks it up in the frame's builtins
    )
    hook_builtins.update(hook_errors)
    return hook_builtins


def _has(guard: Guard, obj, name) -> bool:
    try:
        guard.getattr_(obj, name)
    except AttributeError:
        return False
    return True


def _apply(function, /, *args, **kwargs):
    """`f(*x, **m)` (x and m already guarded); positional-only, so any keyword passes on."""
    return function(*args, **kwargs)


def build_globals(guard: Guard, printer_factory, hook_errors: dict) -> dict:
    """The globals a compiled hook runs in: builtins, guards, error classes."""
    return {
        "__builtins__": build_builtins(guard, hook_errors),
        "__name__": "hook",
        "__metaclass__": type,
        "_getattr_": guard.getattr_,
        "_getitem_": guard.getitem_,
        "_getiter_": guard.getiter_,
        "_getmapping_": guard.getmapping_,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": guard.inplacevar_,
        "_apply_": _apply,
        "_print_": printer_factory,
        **hook_errors,
    }
