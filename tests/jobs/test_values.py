"""Params and config values round-trip through the job spec: equal, and of the same type."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import math
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from snakemake.io import IOFile
from snakemake.iocontainers import Params

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.values import encode_value, required_modules
from snakemake_executor_knot.runtime.values import (
    ESCAPE_KEY,
    MARKER_KEYS,
    PICKLE_KEY,
    UndecodableValue,
    decode_value,
)


@dataclass
class Sample:
    name: str
    reads: int


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Label(str):
    pass


def ship(value):
    """Host encode, the spec's JSON text, container decode."""
    text = json.dumps(encode_value(value, rule="fit", what="param 'x'"))
    return decode_value(json.loads(text))


def same(value):
    back = ship(value)
    assert type(back) is type(value)
    assert back == value
    return back


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        0,
        -(10**30),
        1.5,
        -0.0,
        math.inf,
        True,
        False,
        None,
        [1, "a", [2.5, None], {"k": [True]}],
        {"a": {"b": {"c": []}}, "d": [{}]},
        (1, "a", (2,)),
        {1, 2, 3},
        frozenset({"a", "b"}),
        Path("/tmp/data"),
        PurePosixPath("rel/part"),
        dt.datetime(2024, 5, 1, 12, 30, 15, 999),
        dt.date(2024, 5, 1),
        dt.time(8, 15, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        Decimal("3.14159265358979323846"),
        Sample("s1", 42),
        {1: "one", 2: "two"},
        Level.HIGH,
        Label("tagged"),
    ],
    ids=repr,
)
def test_round_trip_keeps_value_and_type(value):
    same(value)


def test_nan_round_trips_as_a_float():
    back = ship(math.nan)
    assert type(back) is float and math.isnan(back)


def test_nested_values_keep_their_inner_types():
    back = same({"paths": ["a", Path("b")], "when": [dt.date(2020, 1, 2)], "t": (1, 2)})
    assert type(back["paths"][1]) is type(Path("b"))
    assert type(back["paths"][0]) is str


def test_only_the_non_json_part_is_pickled():
    encoded = encode_value(["a", Path("b"), 3], rule="fit", what="param 'p'")
    assert encoded[0] == "a" and encoded[2] == 3
    assert list(encoded[1]) == [PICKLE_KEY]


def test_numpy_scalars_keep_dtype():
    for value in (np.int64(7), np.float32(0.25)):
        back = ship(value)
        assert type(back) is type(value)
        assert back == value


def test_numpy_array_keeps_values_shape_and_dtype():
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    back = ship(array)
    np.testing.assert_array_equal(back, array)
    assert back.dtype == array.dtype and back.shape == (3, 4)


@pytest.mark.parametrize(
    "value",
    [
        {PICKLE_KEY: "not base64 at all"},
        {ESCAPE_KEY: {"x": 1}},
        {ESCAPE_KEY: 5},
        {PICKLE_KEY: 1, "other": 2},
        {"outer": {PICKLE_KEY: [Path("p")]}},
    ],
    ids=repr,
)
def test_user_dicts_holding_a_marker_key_round_trip(value):
    same(value)


def test_a_dict_holding_a_marker_key_is_escaped_not_pickled():
    encoded = encode_value({PICKLE_KEY: "x"}, rule="fit", what="config")
    assert encoded == {ESCAPE_KEY: {PICKLE_KEY: "x"}}


def test_required_modules_names_numpy_for_numpy_values():
    for value in (np.int64(1), np.float32(2.0), np.zeros((2, 2)), [1, {"a": np.int8(3)}]):
        encoded = encode_value(value, rule="fit", what="param 'n'")
        assert required_modules(encoded) == {"numpy"}


def test_required_modules_leaves_out_the_standard_library():
    value = {"p": Path("/x"), "d": dt.datetime(2024, 1, 1), "s": {1, 2}, "n": Decimal("1")}
    assert required_modules(encode_value(value, rule="fit", what="config")) == set()


def test_required_modules_of_plain_json_is_empty():
    assert required_modules(encode_value({"a": [1, "b"]}, rule="fit", what="config")) == set()


def test_required_modules_names_the_module_of_a_user_class():
    encoded = encode_value(Sample("s", 1), rule="fit", what="param 's'")
    assert required_modules(encoded) == {Sample.__module__.partition(".")[0]}


def _generator():
    yield 1


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp_path: open(tmp_path / "f.txt", "w"),  # noqa: SIM115
        lambda tmp_path: lambda x: x,
        lambda tmp_path: _generator(),
        lambda tmp_path: threading.Lock(),
        lambda tmp_path: [1, {"deep": (lambda: 0)}],
    ],
    ids=["open file", "lambda", "generator", "lock", "nested lambda"],
)
def test_unpicklable_values_raise_rule_error_naming_rule_and_value(make, tmp_path):
    value = make(tmp_path)
    with pytest.raises(RuleError) as info:
        encode_value(value, rule="align", what="param 'n'")
    message = str(info.value)
    assert "Rule 'align'" in message
    assert "param 'n'" in message
    assert "inside the run block" in message
    if hasattr(value, "close"):
        value.close()


def test_snakemake_strings_and_named_lists_travel_as_plain_json():
    path = IOFile("sub-01/reads.fq", rule=None)
    params = Params(["x", path])
    assert encode_value(path, rule="fit", what="param 'r'") == "sub-01/reads.fq"
    assert encode_value(params, rule="fit", what="param 'all'") == ["x", "sub-01/reads.fq"]
    assert type(ship(path)) is str


def test_a_pickle_of_a_missing_module_says_which_module():
    # A pickle naming a module the image lacks: protocol 0, global "knot_absent_mod.Thing".
    data = base64.b64encode(b"cknot_absent_mod\nThing\n.").decode()
    with pytest.raises(UndecodableValue, match="knot_absent_mod"):
        decode_value({PICKLE_KEY: data})


_json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
_json_like = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _has_marker(obj) -> bool:
    if isinstance(obj, list):
        return any(_has_marker(item) for item in obj)
    if isinstance(obj, dict):
        return bool(obj.keys() & MARKER_KEYS) or any(_has_marker(v) for v in obj.values())
    return False


@given(_json_like)
def test_exact_json_stays_plain_json_and_round_trips(value):
    encoded = encode_value(value, rule="fit", what="config")
    assert encoded == value
    assert not _has_marker(encoded)
    assert json.loads(json.dumps(encoded)) == value
    assert ship(value) == value
    assert required_modules(encoded) == set()


@given(_json_like)
def test_json_with_paths_and_tuples_mixed_in_round_trips(value):
    mixed = {"data": value, "path": Path("a/b"), "pair": (value, 1)}
    assert same(mixed)["pair"][0] == value
