"""Every way to take an item out of a container goes through the guard, as `x[i]` and `for`
do: unpacking (`[*x]`, `{*x}`, `(*x,)`, `f(*x)`, `{**d}`, `f(**d)`), the methods that pour
one container into another (`extend`, `update`, `|=`, `+=`) and those that hand an item
back (`get`, `pop`, `setdefault`, a sort key).

The item used here is real: a requests PoolManager keeps functools.partial objects in
`key_fn_by_scheme`, which the guard refuses through `d["http"]` (functools is denied). Before
policy.HookTransformer and the container-method wrappers, each route below handed it out raw
(no exploit was known through it: that is the point of guarding them the same way)."""

import collections
import os

import pytest

from attacklib import hook, refused
from hookengine.sandbox.policy import AccessDenied, Guard, build_globals, compile_hook


RAW = "d = requests.Session().adapters['https://'].poolmanager.key_fn_by_scheme"
ROUTES = {
    "subscript (the reference)": "x = d['http']",
    "list display": "x = [*d.values()]",
    "set display": "x = {*d.values()}",
    "tuple display": "x = (*d.values(),)",
    "call with *": "x = (lambda *a: a)(*d.values())",
    "call with **": "x = (lambda **k: k)(**d)",
    "dict display": "x = {**d}",
    "list.extend": "x = []\nx.extend(d.values())",
    "list +=": "x = []\nx += d.values()",
    "set.update": "x = set()\nx.update(d.values())",
    "set.union": "x = set().union(d.values())",
    "dict.update mapping": "x = {}\nx.update(d)",
    "dict.update pairs": "x = {}\nx.update(d.items())",
    "dict |=": "x = {}\nx |= d",
    "dict.fromkeys": "x = {}.fromkeys(d.values())",
    "dict() builtin": "x = dict(d)",
    "dict.get": "x = d.get('http')",
    "dict.pop": "x = d.pop('http')",
    "dict.setdefault": "x = d.setdefault('http')",
    "unbound OrderedDict.get": "x = requests.compat.OrderedDict.get(d, 'http')",
    "view mapping get": "x = d.values().mapping.get('http')",
    "MutableMapping.get": "x = requests.structures.CaseInsensitiveDict(d).get('http')",
    "for loop (the reference)": "for x in d.values():\n    pass",
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_route_out_of_a_container_is_guarded(run, route):
    result = run(hook(f"{RAW}\n{ROUTES[route]}\nreturn repr(x)",
                      "import requests, requests.compat, requests.structures"))
    refused(result, "AccessDenied", "comes from the module 'functools'")


def test_plain_data_still_moves_freely(run):
    result = run(hook('''
x = [1, 2]
d = {"a": 1}
s = {1}
x.extend([3])
x += (4,)
s.update([2], {3})
s |= {4}
d.update({"b": 2}, c=3)
d.update([("e", 5)])
d |= {"f": 6}
y = [*x, *s]
x.sort(key=lambda v: -v)
args = (lambda *a, **k: [a, k])(*x, **{"f": "keyword named like _apply_'s first"})
return [x, sorted(s), d, y, {**d, "z": 0}, (*"ab",), d.get("a"), d.get("zz", 7), x.pop(),
        d.pop("a"), d.setdefault("q", 1), context.get("code"), args, {}.fromkeys("ab"),
        dict(context)["code"], sorted({*range(3)})]
'''))
    assert result.status == "success", result.error
    assert result.result == [
        [4, 3, 2], [1, 2, 3, 4], {"b": 2, "c": 3, "e": 5, "f": 6, "q": 1},
        [1, 2, 3, 4, 1, 2, 3, 4], {"a": 1, "b": 2, "c": 3, "e": 5, "f": 6, "z": 0}, ["a", "b"],
        1, 7,
        1, 1, 1, "123456", [[4, 3, 2, 1], {"f": "keyword named like _apply_'s first"}],
        {"a": None, "b": None}, "123456", [0, 1, 2]]


def test_starred_assignment_targets_still_unpack(run):
    result = run(hook("first, *rest = [1, 2, 3]\n[a, *b], c = [[4, 5], 6]\n"
                      "return [first, rest, a, b, c]"))
    assert result.status == "success", result.error
    assert result.result == [1, [2, 3], 4, [5], 6]


# -- containers a hook cannot build in the sandbox, checked on the guard directly

@pytest.fixture
def guard():
    return Guard(frozenset({"requests"}))


@pytest.mark.parametrize("container, method, args", [
    (lambda: [os], "pop", ()),
    (lambda: collections.deque([os]), "pop", ()),
    (lambda: collections.deque([os]), "popleft", ()),
    (lambda: {os}, "pop", ()),
    (lambda: collections.OrderedDict(k=os), "popitem", ()),
    (lambda: collections.deque(), "extend", ([os],)),
    (lambda: collections.deque(), "extendleft", ([os],)),
    (lambda: collections.Counter(), "update", ([os],)),
    (lambda: collections.ChainMap({"k": os}), "get", ("k",)),
    (lambda: collections.UserList(), "extend", ([os],)),
])
def test_container_methods_check_items_going_in_and_coming_out(guard, container, method,
                                                               args):
    # `popitem` hands back a tuple: its items are then checked as they are taken out.
    bound = guard.getattr_(container(), method)
    if method == "popitem":
        with pytest.raises(AccessDenied, match="module 'os'"):
            guard.getitem_(bound(*args), 1)
    else:
        with pytest.raises(AccessDenied, match="module 'os'"):
            bound(*args)


def test_a_sort_key_sees_only_checked_items(guard):
    with pytest.raises(AccessDenied, match="module 'os'"):
        guard.getattr_([os, os], "sort")(key=lambda item: 0)


def test_unpacking_compiles_to_the_guards():
    seen = []

    class Recording(Guard):
        def getiter_(self, obj):
            seen.append(("iter", type(obj).__name__))
            return super().getiter_(obj)

        def getmapping_(self, mapping):
            seen.append(("mapping", type(mapping).__name__))
            return super().getmapping_(mapping)

    code = compile_hook("def f(a, b):\n    return [*a, *{**b}]\nr = f((1,), {'k': 2})\n",
                        "hook.py", 10000, 50).code
    namespace = build_globals(Recording(frozenset()), None, {})
    exec(code, namespace)
    assert namespace["r"] == [1, "k"]
    assert seen == [("iter", "tuple"), ("mapping", "dict"), ("iter", "dict")]
