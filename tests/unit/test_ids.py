"""The one id rule (ids.py), the stored-text rule, idempotency keys, and cursors however crafted."""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from order_machine.commands import CreateOrder, PerformAction
from order_machine.errors import InvalidCommandError
from order_machine.ids import ID_MARKS, check_id, check_stored, id_problem, key_problem, quote_id
from order_machine.projections.queries import decode_cursor

SETTINGS = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize("good", ["ord-1", "a", "x" * 200, "заказ-1", "注文42", "café", "cust@example.com",
                                  "sku:42~b", "a.b_c", "(o'k)+=,;!$&*"])
def test_these_ids_are_allowed(good: str) -> None:
    assert id_problem(good) is None


@pytest.mark.parametrize("bad", ["", "x" * 201, "a b", "a\tb", "a\nb", "a/b", "a\\b", "a%00b", "a?b", "a#b",
                                 "a\x00b", "\x1f", "\x7f", "\x85", "\u202e", "\ufeff", "\u200b", "\u2028",
                                 "\U0001F4E6", "\ud800", ".", "..", "a\u00a0b"])
def test_these_ids_are_refused_with_the_rule_in_plain_words(bad: str) -> None:
    problem = id_problem(bad)
    assert problem is not None and "letters and digits" in problem and "^" not in problem


@SETTINGS
@given(st.text(max_size=30))
def test_an_allowed_id_holds_no_control_format_space_or_slash_and_quotes_to_ascii(value: str) -> None:
    if id_problem(value) is not None:
        return
    assert "/" not in value and value not in (".", "..")
    assert all(unicodedata.category(c)[0] in "LMN" or c in ID_MARKS for c in value)
    quoted = quote_id(value)
    assert quoted.isascii() and "/" not in quoted and "%2F" not in quoted
    quoted.encode("latin-1")  # fits a header


def test_the_command_models_and_check_id_apply_the_same_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateOrder(order_id="a\x00b", customer_id="c")
    assert caught.value.errors()[0]["loc"] == ("order_id",)
    with pytest.raises(InvalidCommandError) as refused:
        check_id("a\x00b", "order_id")
    assert refused.value.field == "order_id" and "U+0000" in str(refused.value)


def test_stored_text_refuses_nul_and_lone_surrogates_anywhere_in_action_data() -> None:
    with pytest.raises(InvalidCommandError) as refused:
        PerformAction(order_id="o", action="Ship", data={"notes": [{"line": "ok"}, {"line": "a\x00"}]})
    assert refused.value.field == "data.notes[1].line"
    with pytest.raises(InvalidCommandError):
        check_stored({"key\ud800": "v"}, "data")
    check_stored({"text": "tabs\tnew\nlines and émoji 📦 are fine"}, "data")
    with pytest.raises(ValidationError):
        CreateOrder(customer_id="c", description="a\x00")


@pytest.mark.parametrize("key", ["", " ", "a b", "é", "k" * 201, "\x00"])
def test_these_idempotency_keys_are_refused(key: str) -> None:
    assert key_problem(key) is not None
    with pytest.raises(ValidationError):
        CreateOrder(customer_id="c", command_id=key)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@SETTINGS
@given(st.one_of(json_values.map(_cursor), st.text(max_size=60)))
def test_any_crafted_cursor_decodes_to_a_64_bit_key_or_is_refused_naming_cursor(cursor: str) -> None:
    for shape in ((int,), (int, str)):
        try:
            key = decode_cursor(cursor, shape)
        except InvalidCommandError as exc:
            assert exc.field == "cursor"
            continue
        assert key is not None and -(2**63) <= key[0] < 2**63
        if len(key) == 2:
            assert id_problem(key[1]) is None


def test_the_issues_overflowing_cursor_is_refused() -> None:
    with pytest.raises(InvalidCommandError):
        decode_cursor(_cursor([2**63, "a"]), (int, str))
    assert decode_cursor(_cursor([2**63 - 1, "a"]), (int, str)) == (2**63 - 1, "a")


def test_an_unsupported_store_url_is_refused_without_its_password() -> None:
    from order_machine.errors import StoreError
    from order_machine.store import open_store

    with pytest.raises(StoreError) as refused:
        open_store("mysql://root:hunter2@db.internal:3306/shop")
    assert "hunter2" not in str(refused.value) and "root:***@" in str(refused.value)
