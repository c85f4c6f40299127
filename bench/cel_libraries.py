"""Measure the two CEL libraries on a typical guard (docs/guards.md): compile time and evaluations/s.

Standalone, not one of `python -m bench`'s benches: cel-python is not a dependency of the project.
    pip install cel-python common-expression-language
    PYTHONPATH=src python bench/cel_libraries.py [N]
The last rows time the order's has_value guard through Machine.select, as a Python function and as
its YAML condition (needs order_machine importable).
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import Any

EXPR = "amount > 0 || size(items) > 0"
ITEMS = [{"product_id": f"p-{i}", "quantity": 1, "unit_price": Decimal("9.99")} for i in range(3)]


def as_cel(value: Any) -> Any:
    """Decimals as the double they round to (what order_machine.expressions does, check omitted)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: as_cel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_cel(v) for v in value]
    return value


def timed(label: str, n: int, fn: Any) -> None:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    took = time.perf_counter() - start
    print(f"| {label} | {n:,} | {took:.3f} s | {n / took:,.0f}/s | {took / n * 1e6:.2f} µs |")


def main(n: int) -> None:
    print("| what | runs | total | rate | per run |\n| --- | --- | --- | --- | --- |")
    # an amount of 0 makes `||` read the items too: the slower, typical case
    raw = {"amount": Decimal("0"), "items": ITEMS}
    try:
        import cel
    except ImportError:
        print("| common-expression-language not installed | | | | |")
    else:
        timed("cel (Rust): compile", n // 10, lambda: cel.compile(EXPR))
        program = cel.compile(EXPR)
        ready = as_cel(raw)
        assert program.execute(ready) is True
        timed("cel (Rust): execute, context ready", n, lambda: program.execute(ready))
        timed("cel (Rust): convert context + execute", n, lambda: program.execute(as_cel(raw)))
    try:
        import celpy
    except ImportError:
        print("| cel-python not installed | | | | |")
    else:
        env = celpy.Environment()
        timed("cel-python: compile", n // 100, lambda: env.program(env.compile(EXPR)))
        prg = env.program(env.compile(EXPR))
        ready_py = celpy.json_to_cel(as_cel(raw))
        assert bool(prg.evaluate(ready_py)) is True
        timed("cel-python: evaluate, context ready", n // 10, lambda: prg.evaluate(ready_py))
        timed("cel-python: convert context + evaluate", n // 10,
              lambda: prg.evaluate(celpy.json_to_cel(as_cel(raw))))


def order_guard(n: int) -> None:
    """has_value through Machine.select: a Python function, then the YAML condition of order.yaml."""
    import asyncio
    from pathlib import Path

    from order_machine.definition import load_definition
    from order_machine.machine import Machine
    from order_machine.order import Order

    definition = load_definition(Path(__file__).resolve().parents[1] / "definitions" / "order.yaml")
    stripped = definition.model_copy(update={"guards": [g.model_copy(update={"when": None})
                                                        for g in definition.guards]})
    machines = {"Python function": Machine(stripped, guards={"has_value": lambda o, d: bool(o.items) or o.amount > 0}),
                "YAML condition": Machine(definition)}

    async def run() -> None:
        for amount, case in (("1299.99", "amount decides"), ("0", "3 items read")):
            for label, machine in machines.items():
                order = Order(machine, "o-1", "c-1", items=["Laptop", "Mouse", "Keyboard"], amount=Decimal(amount))
                await order.initialise()
                start = time.perf_counter()
                for _ in range(n):
                    await machine.select(order.id, order.state, "Confirm", order, {})
                took = time.perf_counter() - start
                print(f"| has_value, {label}, {case} | {n:,} | {took:.3f} s | {n / took:,.0f}/s | "
                      f"{took / n * 1e6:.2f} µs |")

    asyncio.run(run())


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    main(size)
    try:
        import order_machine  # noqa: F401
    except ImportError:
        print("| order_machine not importable: set PYTHONPATH=src | | | | |")
    else:
        order_guard(size // 2)
