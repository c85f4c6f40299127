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
