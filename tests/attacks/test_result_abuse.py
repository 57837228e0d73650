"""Results whose checks could see other data than what is serialised (issue 10, class 5).

The child writes a result's JSON itself, without recursion, reading containers through the
base types' own methods: a subclass's overrides change nothing, and every cap applies to the
text that leaves the process. Each hostile shape ends as a hook error or as the plain data
it really holds; `sandbox_survives` (autouse) then runs a benign hook.
"""

from __future__ import annotations

import collections
import json

import pytest

from attacklib import limits_with, refused
from hookengine.sandbox.contract import MAX_RESULT_DEPTH, to_json

HIDING_COUNTER = '''
import statistics

class Hiding(statistics.Counter):
    def values(self):
        return []

    def items(self):
        return []

    def keys(self):
        return []

    def copy(self):
        return {}

'''


def hook(body: str, prelude: str = "") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{prelude}\ndef send_phone_message(recipient, text, context):\n{indented}\n"


def test_counter_subclass_hiding_its_values_gives_what_it_holds(run):
    result = run(hook('return Hiding({"a": Hiding({"b": [1, 2]}), "c": 3})', HIDING_COUNTER))
    assert result.status == "success", result.error
    assert result.result == {"a": {"b": [1, 2]}, "c": 3}


@pytest.mark.parametrize("levels", [MAX_RESULT_DEPTH + 1, 900, 10_000])
def test_counter_subclass_hiding_its_depth_is_refused(run, levels):
    result = run(hook(f'''
cur = 1
for i in range({levels}):
    cur = Hiding({{"k": cur}})
return cur
''', HIDING_COUNTER))
    refused(result, "ValueError", f"more than {MAX_RESULT_DEPTH} levels deep")


def test_deepest_allowed_result_comes_back_whole(run):
    result = run(hook(f'''
cur = "bottom"
for i in range({MAX_RESULT_DEPTH}):
    cur = Hiding({{"k": cur}}) if i % 2 else [cur]
return cur
''', HIDING_COUNTER))
    assert result.status == "success", result.error
    value, depth = result.result, 0
    while not isinstance(value, str):
        value, depth = value["k"] if isinstance(value, dict) else value[0], depth + 1
    assert (value, depth) == ("bottom", MAX_RESULT_DEPTH)


@pytest.mark.parametrize("build", [
    "cur = []\nfor i in range(10000):\n    cur = [cur]",
    "cur = {}\nfor i in range(10000):\n    cur = {'k': cur}",
    "cur = ()\nfor i in range(10000):\n    cur = (cur, 1)",
])
def test_deep_nesting_built_iteratively_is_refused(run, build):
    refused(run(hook(build + "\nreturn cur")), "ValueError", "levels deep")


@pytest.mark.parametrize("build", [
    "cur = []\ncur.append(cur)",
    "cur = {}\ncur['self'] = cur",
    "cur = Hiding()\ncur.update({'self': cur})",
    "inner = []\ncur = {'a': [inner]}\ninner.append(cur)",
])
def test_self_referencing_results_are_refused(run, build):
    refused(run(hook(build + "\nreturn cur", HIDING_COUNTER)), "ValueError",
            "levels deep (or refers to itself)")


def test_shared_parts_cannot_multiply_past_the_size_cap(run):
    # 2**40 references to one string: the walk stops at the cap, it does not expand them.
    result = run(hook('a = ["x" * 100]\nfor i in range(40):\n    a = [a, a]\nreturn a'))
    refused(result, "ValueError", "limit is 65536")
    assert result.elapsed < 3


def test_size_cap_counts_escaped_text(run):
    limits = limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=128, max_result_bytes=1000)
    # 200 characters, but 1202 bytes once written as JSON ("\u00e9" each).
    refused(run(hook('return "\\u00e9" * 200'), limits=limits), "ValueError",
            "limit is 1000")
    assert run(hook('return "e" * 998'), limits=limits).result == "e" * 998
    refused(run(hook('return "e" * 999'), limits=limits), "ValueError", "limit is 1000")


def test_huge_integers_are_refused_and_large_ones_kept(run):
    refused(run(hook("return [1, 10 ** 5000]")), "ValueError", "result[1]",
            "about 5001 digits", "limit is 4300 digits")
    refused(run(hook("return {10 ** 5000: 1}")), "ValueError", "a key of the result")
    result = run(hook("return [10 ** 4000, -(2 ** 64)]"))
    assert result.status == "success", result.error
    assert result.result == [10 ** 4000, -(2 ** 64)]


@pytest.mark.parametrize("value, where", [
    ('float("nan")', "the result is nan"),
    ('{"a": [1, -float("inf")]}', 'result["a"][1] is -inf'),
    ('Hiding({"x": float("nan")})', 'result["x"] is nan'),
    ('{float("inf"): 1}', "a key of the result is inf"),
])
def test_nan_and_infinity_are_refused_where_they_are(run, value, where):
    refused(run(hook(f"return {value}", HIDING_COUNTER)), "ValueError", where,
            "JSON cannot carry")


def test_number_boolean_and_none_keys_become_strings_as_json_does(run):
    result = run(hook('return {1: "int", 2.5: "float", None: "none", False: "bool"}'))
    assert result.status == "success", result.error
    assert result.result == {"1": "int", "2.5": "float", "null": "none", "false": "bool"}


@pytest.mark.parametrize("value, fragments", [
    ('{(1, 2): "tuple key"}', ("has a key of type tuple", "keys must be strings")),
    ('{"a": {frozenset(): 1}}', ('result["a"] has a key of type frozenset',)),
    ('[b"raw"]', ("result[0] is of type bytes", "decode bytes to a string")),
    ('{"a": [1, "x".encode()]}', ('result["a"][1] is of type bytes',)),
    ('Hiding({"s": {1}})', ('result["s"] is of type set', "not JSON data")),
])
def test_what_json_cannot_hold_is_refused_with_its_place(run, value, fragments):
    refused(run(hook(f"return {value}", HIDING_COUNTER)), "TypeError", *fragments)


def test_subclasses_of_str_int_and_float_come_back_as_their_values(run):
    result = run(hook('return {Name("k"): [Name("v"), Count(3), Ratio(0.5), True, None]}', '''
class Name(str):
    def upper(self):
        return "fake"

class Count(int):
    pass

class Ratio(float):
    pass
'''))
    assert result.status == "success", result.error
    assert result.result == {"k": ["v", 3, 0.5, True, None]}


def test_context_returned_whole_is_plain_data(run):
    # context is read-only dicts and tuples: it serialises as the JSON it was made from.
    result = run(hook("return context"), args=["+1555", "t", {"code": "1", "list": [1, [2]]}])
    assert result.status == "success", result.error
    assert result.result["list"] == [1, [2]] and result.result["code"] == "1"
    assert result.result["webtask"]["secrets"] == {"TOKEN": "s3cr3t-value"}


def test_an_error_whose_text_cannot_be_built_is_still_reported(run):
    result = run(hook("deep = []\nfor i in range(10000):\n    deep = [deep]\n"
                      "raise ValueError(deep)"))
    refused(result, "ValueError", "could not be built: RecursionError")
    assert "raise ValueError(deep)" in result.error["stack"]


# The language layer refuses names that start with "_", so a hook cannot override __iter__
# and friends; the serialiser must not depend on that. These run it directly, as if that
# layer had been broken.

class IterHidingDict(dict):
    def __iter__(self):
        return iter(())

    def items(self):
        return iter(())

    def keys(self):
        return iter(())

    def values(self):
        return iter(())

    def __len__(self):
        return 0


class IterHidingList(list):
    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


class LyingStr(str):
    def __str__(self):
        return "lie"

    def __len__(self):
        return 0


class LyingInt(int):
    def __repr__(self):
        return "[[["

    __str__ = __repr__


class LyingFloat(float):
    def __repr__(self):
        return "NaN"

    __float__ = lambda self: float("nan")  # noqa: E731


def test_dunder_overrides_do_not_change_what_is_written():
    value = IterHidingDict(a=IterHidingList([1, LyingStr("s"), LyingInt(5), LyingFloat(0.5)]),
                           b=collections.OrderedDict(x=collections.defaultdict(list, y=[])))
    text = to_json(value, 10_000)
    assert json.loads(text) == {"a": [1, "s", 5, 0.5], "b": {"x": {"y": []}}}


def test_dunder_overrides_cannot_hide_depth_or_size():
    deep = 1
    for _ in range(10_000):
        deep = IterHidingList([IterHidingDict(k=deep)])
    with pytest.raises(ValueError, match="levels deep"):
        to_json(deep, 1 << 20)
    with pytest.raises(ValueError, match="limit is 100"):
        to_json(IterHidingList(["x" * 50, LyingStr("y" * 60)]), 100)
