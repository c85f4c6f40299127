"""`order-machine orders create|show|list|history|do`: operate on orders in a store from a terminal.

Tables for people, `--json` for scripts. Commands go through the application service (so reads that
follow see them); reads come from the read models. Imports `commands`, `errors` and the CLI helpers.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..bootstrap import Runtime
from ..commands import CommandResult, CreateOrder, PerformAction, Command
from ..definition import FieldSpec
from ..errors import InvalidCommandError
from ._session import (
    add_store_options, print_json, reading, running, settings_from, table,
)

EPILOG = """\
examples:
  order-machine orders create --customer c-7 --item sku-42:2:19.99 --item sku-7:1:4.50
  order-machine orders create --id ord-1 --customer c-7 --amount 120.00 --description "Bulk order"
  order-machine orders show ord-1
  order-machine orders list --status Pending --limit 20
  order-machine orders list --customer c-7 --json
  order-machine orders history ord-1
  order-machine orders do ord-1 confirm
  order-machine orders do ord-1 ship --field tracking_number=1Z999 --field shipping_address="1 Main St"
  order-machine orders do ord-1 cancel --field reason="out of stock" --expect-version 3

every subcommand takes --db URL (default: $ORDER_MACHINE_DB_URL, else sqlite:///orders.db) and --json
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "orders", help="create, show, list and act on orders in a store",
        description="Operate on orders in the store a --db URL names.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    add_store_options(common)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="orders_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text + ".",
            epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
        return child

    p = add("create", "create an order", "order-machine orders create --customer c-7 --item sku-42:2:19.99")
    p.add_argument("--customer", required=True, metavar="CUSTOMER_ID", help="who places the order")
    p.add_argument("--id", metavar="ORDER_ID", help="the order's id (default: generated)")
    p.add_argument("--description", default="", help="free text shown on the order")
    p.add_argument("--amount", type=_decimal, metavar="DECIMAL", help="initial amount before items, e.g. 120.00")
    p.add_argument("--item", dest="items", action="append", type=_item, default=[], metavar="PRODUCT:QTY:PRICE",
                   help="an item line, e.g. sku-42:2:19.99 (repeat for several)")
    p.add_argument("--field", dest="fields", action="append", type=_field, default=[], metavar="NAME=VALUE",
                   help="a data field order.yaml declares beyond the ones above (repeat for several)")
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY", help="run at most once for this key")
    p.set_defaults(handler=create)

    p = add("show", "show one order with its items", "order-machine orders show ord-1")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.set_defaults(handler=show)

    p = add("list", "list orders: a customer's, in a status, or the most recently updated",
            "order-machine orders list --status Shipped --limit 20")
    p.add_argument("--status", help="only orders in this state")
    p.add_argument("--customer", metavar="CUSTOMER_ID", help="only this customer's orders")
    p.add_argument("--limit", type=int, default=50, help="page size (default: 50)")
    p.add_argument("--cursor", help="the next_cursor a previous page printed")
    p.set_defaults(handler=list_orders)

    p = add("history", "every event of an order, oldest first", "order-machine orders history ord-1")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.set_defaults(handler=history)

    p = add("do", "take an action on an order (Confirm, StartProcessing, Ship, Deliver, Cancel, Return)",
            "order-machine orders do ord-1 ship --field tracking_number=1Z999 --field shipping_address='1 Main St'")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.add_argument("action", metavar="ACTION", help="the action, in any case: confirm, start-processing, Ship ...")
    p.add_argument("--field", dest="fields", action="append", type=_field, default=[], metavar="NAME=VALUE",
                   help="data the action takes (repeat for several); `orders show` lists the actions allowed now")
    p.add_argument("--expect-version", type=int, metavar="N", help="refuse unless the order is at version N")
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY", help="run at most once for this key")
    p.set_defaults(handler=do)


# --------------------------------------------------------------------------- argument types


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite decimal number: {text!r}")
    return value


def _item(text: str) -> dict[str, Any]:
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"an item is PRODUCT:QTY:PRICE, e.g. sku-42:2:19.99; got {text!r}")
    product, quantity, price = parts
    try:
        count = int(quantity)
    except ValueError:
        raise argparse.ArgumentTypeError(f"item {text!r}: quantity {quantity!r} is not a whole number") from None
    return {"product_id": product, "quantity": count, "unit_price": _decimal(price)}


def _field(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"a field is NAME=VALUE, e.g. reason='out of stock'; got {text!r}")
    return name.strip(), value


# --------------------------------------------------------------------------- handlers


def _command(cls: type[Command], **data: Any) -> Command:
    """A command model, with pydantic's complaint turned into one line naming the field."""
    try:
        return cls(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise InvalidCommandError(f"invalid {field}: {first['msg']}", field) from None


async def create(args: argparse.Namespace) -> int:
    async with running(settings_from(args)) as rt:
        command = _command(CreateOrder, order_id=args.id, customer_id=args.customer, description=args.description,
                           amount=args.amount, items=args.items, command_id=args.key,
                           data=_typed(rt.machine.definition.data, args.fields))
        result = await rt.service.handle(command)
        if args.json:
            print_json(_result_json(result))
        else:
            print(f"created order {result.order_id}: {result.state} (version {result.version})")
    return 0


async def show(args: argparse.Namespace) -> int:
    async with reading(args) as rt:
        order = await rt.service.get_order(args.order_id)
        actions = await rt.service.allowed_actions(args.order_id)
    if args.json:
        print_json({**order.model_dump(mode="json"), "allowed_actions": [a["action"] for a in actions],
                    "blocked_actions": [{"action": a["action"], **a["blocked_by"]} for a in actions if a["blocked_by"]]})
        return 0
    rows = [("order", order.id), ("customer", order.customer_id), ("status", order.status),
            ("amount", order.amount), ("description", order.description), ("version", order.version),
            ("created", _time(order.created_at)), ("updated", _time(order.updated_at))]
    # what the order's actions recorded, by order.yaml's names (tracking_number, cancellation_reason, ...)
    rows += [(name, value) for name, value in order.data.items() if value not in (None, "", [], {})]
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    if order.items:
        print()
        print(table([(i.product_id, i.quantity, i.unit_price, i.total_price) for i in order.items],
                    ("product", "quantity", "unit_price", "total_price")))
    allowed = ", ".join(_action_usage(a) for a in actions if not a["blocked_by"]) or (
        "none" if actions else "none (terminal state)")
    print(f"\nactions allowed now: {allowed}")
    for a in actions:
        if a["blocked_by"]:
            why = a["blocked_by"]["description"] or "it says no"
            print(f"blocked by guard {a['blocked_by']['guard']}: {a['action']} ({why})")
    return 0


async def list_orders(args: argparse.Namespace) -> int:
    async with reading(args) as rt:
        page = await rt.service.list_orders(customer_id=args.customer, status=args.status, limit=args.limit,
                                            cursor=args.cursor)
    if args.json:
        print_json(page.model_dump(mode="json"))
        return 0
    rows = [(o.id, o.customer_id, o.status, o.amount, getattr(o, "item_count", None) or len(getattr(o, "items", [])),
             _time(o.updated_at)) for o in page.items]
    print(table(rows, ("order", "customer", "status", "amount", "items", "updated")) if rows else "no orders")
    if page.next_cursor:
        print(f"\nmore: --cursor {page.next_cursor}")
    return 0


async def history(args: argparse.Namespace) -> int:
    async with reading(args) as rt:
        entries = await rt.service.get_order_history(args.order_id, limit=1000)
        while len(entries) % 1000 == 0 and (more := await rt.service.get_order_history(
                args.order_id, after_version=entries[-1].version, limit=1000)):
            entries += more
    if args.json:
        print_json([e.model_dump(mode="json") for e in entries])
        return 0
    rows = [(e.version, _time(e.at), e.type, e.action or "",
             " -> ".join(s for s in (e.from_state, e.to_state) if s)) for e in entries]
    print(table(rows, ("version", "at", "event", "action", "state")))
    return 0


async def do(args: argparse.Namespace) -> int:
    async with running(settings_from(args)) as rt:
        action = _action_name(rt, args.action)
        data = _typed_fields(rt, action, args.fields)
        command = _command(PerformAction, order_id=args.order_id, action=action, data=data,
                           expected_version=args.expect_version, command_id=args.key)
        result = await rt.service.handle(command)
    if args.json:
        print_json(_result_json(result))
    else:
        again = " (already done: same --key)" if result.duplicate else ""
        print(f"order {result.order_id}: {action} -> {result.state} (version {result.version}){again}")
    return 0


# --------------------------------------------------------------------------- helpers


def _action_name(rt: Runtime, given: str) -> str:
    """`start-processing`, `start_processing` and `StartProcessing` all name StartProcessing."""
    key = given.replace("-", "").replace("_", "").lower()
    return next((a for a in rt.machine.actions if a.lower() == key), given)


def _typed_fields(rt: Runtime, action: str, fields: list[tuple[str, str]]) -> dict[str, Any]:
    """Command-line text to the types an action's fields declare (the machine checks the rest)."""
    spec = rt.machine.action_spec(action)
    return _typed(spec.fields if spec is not None else {}, fields)


def _typed(declared: Mapping[str, FieldSpec], fields: list[tuple[str, str]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, text in fields:
        kind = declared[name].type if name in declared else "str"
        if kind == "bool" and text.lower() in ("true", "yes", "1", "false", "no", "0"):
            data[name] = text.lower() in ("true", "yes", "1")
        elif kind == "list":
            data[name] = _list(name, text)
        else:
            data[name] = text
    return data


def _list(name: str, text: str) -> list[Any]:
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidCommandError(f"field {name!r}: not a JSON list: {exc}", name) from None
        if isinstance(value, list):
            return value
    return [part.strip() for part in text.split(",") if part.strip()]


def _action_usage(action: dict[str, Any]) -> str:
    fields = " ".join(f"--field {n}=..." for n, f in action.get("fields", {}).items() if f.get("required"))
    return f"{action['action']} {fields}".strip()


def _result_json(result: CommandResult) -> dict[str, Any]:
    return result.model_dump(mode="json")


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if hasattr(value, "strftime") else str(value)
