"""CEL conditions: compiled once with the line and column of a mistake, the names they read, decimals
compared exactly at the cent, and a condition that cannot be evaluated raising EvaluationError (never
another exception)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_machine.expressions import EvaluationError, ExpressionSyntaxError, compile_expression, to_cel

HAS_VALUE = "amount > 0 || size(items) > 0"


def test_a_condition_lists_the_top_level_names_it_reads() -> None:
    assert set(compile_expression(HAS_VALUE).reads) == {"amount", "items"}
    assert compile_expression("input.reason != '' && state == 'Pending'").reads == ("input", "state")


def test_names_bound_by_macros_are_not_read_from_the_instance() -> None:
    expression = compile_expression("items.all(i, i.quantity > 0) && tags.exists(t, t == 'vip')")
    assert set(expression.reads) == {"items", "tags"}


def test_the_fields_read_from_input_are_listed_but_not_words_inside_strings() -> None:
    expression = compile_expression("input.reason != 'input.other' && has(input.note) && input.reason != ''")
    assert expression.fields_of("input") == ("reason", "note")
    assert compile_expression("myinput.x == 1").fields_of("input") == ()


@pytest.mark.parametrize(("source", "line", "column"), [("amount > ", 1, 10), ("amount >\n\n  > 1", 3, 3),
                                                        ("", 1, 1), ("size(items", 1, 11)])
def test_a_syntax_error_says_where(source: str, line: int, column: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as raised:
        compile_expression(source)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert raised.value.message.startswith("Syntax error")
    assert "expecting {" not in raised.value.message  # the list of every token is cut


@pytest.mark.parametrize(("amount", "passes"), [("0.01", True), ("0", False), ("0.00", False), ("-0.01", False),
                                                ("1299.99", True)])
def test_decimal_amounts_compare_exactly_with_zero(amount: str, passes: bool) -> None:
    assert compile_expression("amount > 0").evaluate({"amount": Decimal(amount)}) is passes


@pytest.mark.parametrize(("condition", "amount", "passes"), [
    ("amount >= 100.10", "100.10", True),
    ("amount > 100.10", "100.10", False),
    ("amount > 100.09", "100.10", True),
    ("amount < 100.11", "100.10", True),
    ("amount == 100.1", "100.10", True),
    ("amount > 9999999999999.98", "9999999999999.99", True),   # 15 significant digits
    ("amount == 0.3", "0.3", True),
])
def test_decimals_compare_with_decimal_literals_as_written(condition: str, amount: str, passes: bool) -> None:
    assert compile_expression(condition).evaluate({"amount": Decimal(amount)}) is passes


def test_decimals_inside_lists_of_mappings_are_converted_too() -> None:
    items = [{"product_id": "p", "quantity": 2, "unit_price": Decimal("0.01")}]
    assert compile_expression("items.all(i, i.unit_price > 0)").evaluate({"items": items}) is True


@pytest.mark.parametrize("value", ["12345678901234567.89", "0.1000000000000000000001", "NaN", "Infinity", "1E-400"])
def test_a_decimal_no_double_holds_exactly_is_an_error_not_an_approximation(value: str) -> None:
    with pytest.raises(EvaluationError, match="cannot be compared exactly"):
        to_cel(Decimal(value))
    with pytest.raises(EvaluationError, match="cannot be compared exactly"):
        compile_expression("amount > 0").evaluate({"amount": Decimal(value)})


@pytest.mark.parametrize(("source", "context", "fragment"), [
    ("input.nope == 1", {"input": {}}, "no such key: 'nope'"),
    ("amount > 0", {"amount": "ten"}, "No such overload"),
    ("amount > 0", {}, "No such overload"),                 # a missing name reads as null
    ("1 / zero > 0", {"zero": 0}, "division by zero"),
    ("amount", {"amount": 3}, "must be true or false, got 3"),
    ("nofunction(amount)", {"amount": 3}, "nofunction"),
])
def test_an_evaluation_that_fails_raises_evaluation_error_with_a_short_reason(
        source: str, context: dict[str, object], fragment: str) -> None:
    with pytest.raises(EvaluationError) as raised:
        compile_expression(source).evaluate(context)
    assert fragment in str(raised.value)
    assert "Check that" not in str(raised.value) and "Convert explicitly" not in str(raised.value)


def test_a_name_not_recorded_yet_reads_as_null() -> None:
    assert compile_expression("transaction_id == null").evaluate({}) is True


def test_a_value_is_converted_only_when_the_evaluation_reaches_it() -> None:
    expression = compile_expression(HAS_VALUE)
    unconvertible = [{"unit_price": Decimal("0.1000000000000000000001")}]
    assert expression.evaluate({"amount": Decimal("1"), "items": unconvertible}) is True  # `||` stopped early
    with pytest.raises(EvaluationError, match="cannot be compared exactly"):  # not "undefined variable"
        expression.evaluate({"amount": Decimal("0"), "items": unconvertible})


def test_falsy_values_are_values_not_missing_names() -> None:
    expression = compile_expression("count == 0 && flag == false && name == '' && size(tags) == 0")
    assert expression.evaluate({"count": 0, "flag": False, "name": "", "tags": []}) is True
