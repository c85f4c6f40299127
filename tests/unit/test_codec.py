"""The stored JSON text: what the standard library writes, whichever encoder wrote it; plain JSON only."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from order_machine.errors import StoreError
from order_machine.store.codec import dumps


@pytest.mark.parametrize("value", [
    {"a": "plain", "n": 10**30, "m": -2**63, "t": True, "none": None},
    {"text": "\x00\x1f\x7f\u2028 é \"quoted\" \\ back", "emoji": "📦"},
    {"lone": "\ud800"},  # not storable as UTF-8 text: the same answer either way
    {"nested": {"a": 1}, "list": [1, "x"], "f": 1.5},
])
def test_the_stores_json_text_is_what_the_standard_library_writes(value: dict[str, object]) -> None:
    assert dumps(value, "data") == json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def test_a_value_that_is_not_plain_json_is_refused_by_name() -> None:
    with pytest.raises(StoreError, match="data is not plain JSON"):
        dumps({"amount": Decimal("1.50")}, "data")
    with pytest.raises(StoreError, match="data is not plain JSON"):
        dumps({"ratio": float("nan")}, "data")


@pytest.mark.parametrize("value", [
    {"items": [{"product_id": "p-1", "quantity": 2, "unit_price": "9.50"}], "empty": [], "object": {}},
    {"deep": [[{"a": [None, True, -1]}]]},
    {"int_keys": {1: "one"}},  # json writes the key as "1": the careful way
    {"tuple": ("a", 1)},  # json writes an array
])
def test_nested_lists_and_objects_are_written_as_the_standard_library_writes_them(value: dict[str, object]) -> None:
    assert dumps(value, "data") == json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def test_a_float_or_a_decimal_inside_a_list_still_goes_the_careful_way() -> None:
    assert dumps({"xs": [1e16]}, "data") == '{"xs":[1e+16]}'  # json's spelling, not msgspec's 1e16
    with pytest.raises(StoreError, match="not plain JSON"):
        dumps({"xs": [{"price": Decimal("1.5")}]}, "data")


def test_recorded_at_is_utc_text_with_microseconds_whatever_the_zone_it_came_in() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from order_machine.store.codec import utc_text

    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert utc_text(at, "e") == "2026-11-26T12:00:00.000000+00:00"
    assert utc_text(at.astimezone(timezone(timedelta(hours=2))), "e") == "2026-11-26T12:00:00.000000+00:00"
    with pytest.raises(StoreError, match="timezone-aware"):
        utc_text(datetime(2026, 11, 26, 12, 0), "e")


def test_data_nested_deeper_than_python_recurses_is_refused_by_name() -> None:
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(StoreError, match="data is nested too deeply"):
        dumps(deep, "data")
