"""Transition diagrams of a Definition: Graphviz DOT, SVG and PNG, Mermaid text, and one order's path.

Imports only `definition`, `errors` and `events` (to read an order's history); `graphviz` is imported
lazily inside functions, and no store, bus or web framework is ever imported.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from .definition import Definition, TransitionSpec
from .errors import DiagramError, OrderNotFoundError
from .events import OrderTransitioned, StoredEvent, decode

if TYPE_CHECKING:  # only for annotations: the caller hands us an open store
    from .store import EventStore

Format = Literal["svg", "png", "dot", "mmd"]
FORMATS: tuple[Format, ...] = ("svg", "png", "dot", "mmd")
DEFAULT_FORMATS: tuple[Format, ...] = ("svg", "png", "mmd")
MEDIA_TYPES: dict[str, str] = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "mmd": "text/plain; charset=utf-8",
}
INSTALL_HINT = "install Graphviz: apt-get install graphviz (Debian/Ubuntu) or brew install graphviz (macOS)"

Step = tuple[str, str, str]
"""One transition an entity took: (source state, action, target state)."""

_FONT = "Helvetica,Arial,sans-serif"
_INK, _MUTED, _FAINT = "#1e293b", "#64748b", "#94a3b8"
_PATH, _PATH_FILL = "#1d4ed8", "#dbeafe"
_NOW, _NOW_FILL = "#b45309", "#fde68a"
_NEXT = "#15803d"
_START = "__start__"  # state names start with a letter, so this id cannot clash
_STAMP = "order_machine_source"  # no hyphens: SVG comments escape them
_STAMP_RE = re.compile(rb"order_machine_source: (sha256:[0-9a-f]{64})")


# --------------------------------------------------------------------------- DOT


def dot_source(definition: Definition, path: Sequence[Step] = (), current: str | None = None,
               title: str | None = None) -> str:
    """The Graphviz DOT text of a definition; with a path, one entity's history is drawn over it.

    `path` is the (source, action, target) steps taken in order; `current` defaults to the last
    target (or the initial state). Works without the Graphviz binary.
    """
    return str(_digraph(definition, path, current, title).source)


def _digraph(definition: Definition, path: Sequence[Step], current: str | None, title: str | None) -> Any:
    import graphviz

    drawing_path = bool(path) or current is not None
    if drawing_path:
        current = _check_path(definition, path, current)
    g = graphviz.Digraph(name=definition.name)
    heading = title or f"{definition.name} (v{definition.version})"
    if drawing_path:
        can_move = any(source == current for source, _ in definition.edges())
        options = "green dashed: allowed now" if can_move else "no action allowed now"
        heading += f"\ncurrent: {current}   blue: path taken (step numbers)   {options}"
    g.attr(
        "graph", label=_text(heading), labelloc="t", fontname=_FONT, fontsize="14", fontcolor=_INK,
        tooltip=_text(definition.description or definition.name), rankdir="LR", nodesep="0.45",
        ranksep="0.55", pad="0.25",
    )
    g.attr("node", shape="box", style="rounded,filled", fontname=_FONT, fontsize="12", fontcolor=_INK,
           color=_INK, fillcolor="#f8fafc", margin="0.18,0.07", height="0.42")
    g.attr("edge", fontname=_FONT, fontsize="10", fontcolor=_INK, color=_MUTED, arrowsize="0.7")

    visited = {definition.initial} | {s for s, _, _ in path} | {t for _, _, t in path}
    g.node(_START, label="", shape="circle", style="filled", fillcolor=_INK, color=_INK, width="0.16",
           height="0.16", fixedsize="true", tooltip=_text(f"start: {definition.initial}"))
    for state in definition.states:
        attrs: dict[str, str] = {"tooltip": _text(_state_tip(definition, state.name))}
        if state.terminal:
            attrs["peripheries"] = "2"
        if drawing_path and state.name == current:
            attrs.update(fillcolor=_NOW_FILL, color=_NOW, penwidth="3")
        elif drawing_path and state.name in visited:
            attrs.update(fillcolor=_PATH_FILL, color=_PATH, penwidth="1.5")
        elif drawing_path:
            attrs.update(color=_FAINT, fontcolor=_MUTED)
        g.node(state.name, label=_text(state.name), **attrs)

    start_attrs = {"color": _PATH, "penwidth": "2"} if drawing_path else {"color": _INK}
    g.edge(_START, definition.initial, tooltip=_text(f"initial state: {definition.initial}"), **start_attrs)

    steps: dict[Step, list[int]] = {}
    for number, step in enumerate(path, start=1):
        steps.setdefault(step, []).append(number)
    declared: set[Step] = set()
    for source, t in definition.edges():
        step = (source, t.action, t.target)
        declared.add(step)
        label = _edge_label(t.action, t.guards)
        attrs = {"tooltip": _text(_edge_tip(definition, source, t)), "weight": _weight(definition, t)}
        if drawing_path:
            attrs.update(color=_FAINT, fontcolor=_MUTED)
        if step in steps:
            label = f"({','.join(map(str, steps[step]))}) {label}"
            attrs.update(color=_PATH, fontcolor=_PATH, penwidth="2.4")
        if drawing_path and source == current:
            attrs.update(color=_NEXT, fontcolor=_NEXT, penwidth="2.4", style="dashed")
        g.edge(source, t.target, label=_text(label), **attrs)
    for step, numbers in steps.items():  # history the definition no longer declares: still drawn
        if step not in declared:
            source, action, target = step
            label = f"({','.join(map(str, numbers))}) {action}"
            g.edge(source, target, label=_text(label), color=_PATH, fontcolor=_PATH, penwidth="2.4",
                   style="bold", tooltip=_text(f"{action}: not declared by this definition version"))
    return g


def _weight(definition: Definition, t: TransitionSpec) -> str:
    # Keep the main line straight: fan-ins (one action from many states) and edges into terminal
    # states bend around it instead of pulling it into a staircase.
    return "1" if len(t.source) > 1 or definition.state(t.target).terminal else "4"


def _check_path(definition: Definition, path: Sequence[Step], current: str | None) -> str:
    known = set(definition.state_names)
    for number, (source, action, target) in enumerate(path, start=1):
        for state in (source, target):
            if state not in known:
                raise DiagramError(f"step {number} ({action} {source} -> {target}) names state {state!r}, "
                                   f"which {definition.name!r} does not declare")
    now = current if current is not None else (path[-1][2] if path else definition.initial)
    if now not in known:
        raise DiagramError(f"current state {now!r} is not declared by {definition.name!r}")
    return now


def _edge_label(action: str, guards: Sequence[str]) -> str:
    return f"{action} [{' and '.join(guards)}]" if guards else action


def _state_tip(definition: Definition, name: str) -> str:
    state = definition.state(name)
    kind = " (terminal)" if state.terminal else " (initial)" if name == definition.initial else ""
    return f"{name}{kind}: {state.description}" if state.description else f"{name}{kind}"


def _edge_tip(definition: Definition, source: str, t: TransitionSpec) -> str:
    action = definition.action(t.action)
    lines = [f"{t.action}: {action.description}" if action.description else t.action]
    if t.description:
        lines.append(t.description)
    guards = {g.name: g.description for g in definition.guards}
    lines += [f"guard {g}: {guards[g]}" if guards.get(g) else f"guard {g}" for g in t.guards]
    lines.append(f"{source} -> {t.target}" + (f", emits {t.emits}" if t.emits else ""))
    return "\n".join(lines)


def _text(value: str) -> str:
    """A DOT string shown literally: backslashes kept, never read as an HTML label, newlines kept."""
    from graphviz import nohtml

    return cast(str, nohtml(value.replace("\\", "\\\\").replace("\n", "\\n")))  # str() would drop NoHtml


# --------------------------------------------------------------------------- SVG and PNG


def render_diagram(definition: Definition, fmt: str = "svg", *, path: Sequence[Step] = (),
                   current: str | None = None, title: str | None = None) -> bytes:
    """A definition's diagram in one format (svg, png, dot or mmd); with a path, an entity's diagram.

    SVG and PNG need the Graphviz `dot` program; their bytes carry the sha256 of the DOT source they
    were drawn from, so a stale file can be told apart whatever Graphviz version drew it.
    Raises DiagramError when `dot` is missing or fails.
    """
    if fmt == "mmd":
        if path or current is not None:
            raise DiagramError("an entity's path is drawn as svg, png or dot, not mmd")
        return mermaid_source(definition).encode()
    if fmt not in FORMATS:
        raise DiagramError(f"unknown diagram format {fmt!r}: use one of {', '.join(FORMATS)}")
    graph = _digraph(definition, path, current, title)
    if fmt == "dot":
        return str(graph.source).encode()
    digest = source_digest(graph.source)
    graph.attr("graph", comment=f"{_STAMP}: {digest}")  # graphviz writes it into the SVG as a comment
    data = _pipe(graph, fmt, definition.name)
    return _stamp_png(data, digest) if fmt == "png" else data


def _pipe(graph: Any, fmt: str, name: str) -> bytes:
    import graphviz

    try:
        return bytes(graph.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise DiagramError(f"cannot draw {fmt}: the Graphviz `dot` program was not found; {INSTALL_HINT}") from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise DiagramError(f"Graphviz failed to draw {name!r} as {fmt}: {detail[0] if detail else exc}") from None


def source_digest(dot: str) -> str:
    """The fingerprint stamped into rendered files: sha256 of the DOT text."""
    return "sha256:" + hashlib.sha256(dot.encode()).hexdigest()


def read_stamp(data: bytes) -> str | None:
    """The DOT fingerprint an SVG or PNG from render_diagram carries, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        pos = 8
        while pos + 8 <= len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            if kind == b"tEXt" and body.startswith(_STAMP.encode() + b"\0"):
                return body.split(b"\0", 1)[1].decode("latin-1")
            pos += 12 + length
        return None
    found = _STAMP_RE.search(data)
    return found.group(1).decode() if found else None


def _stamp_png(data: bytes, digest: str) -> bytes:
    # a tEXt chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)
    body = _STAMP.encode() + b"\0" + digest.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]


# --------------------------------------------------------------------------- Mermaid


def mermaid_source(definition: Definition) -> str:
    """Mermaid `stateDiagram-v2` text: [*] to the initial state, terminal states to [*], labelled edges."""
    lines = ["---", f"title: {definition.name} (v{definition.version})", "---", "stateDiagram-v2",
             "    direction LR"]
    for state in definition.states:
        if state.description:  # a comment: kept for readers of the text, no clutter in the drawing
            lines.append(f"    %% {state.name}: {_one_line(state.description)}")
    lines.append(f"    [*] --> {definition.initial}")
    for source, t in definition.edges():
        lines.append(f"    {source} --> {t.target} : {_edge_label(t.action, t.guards)}")
    lines += [f"    {name} --> [*]" for name in definition.terminal_states]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- an order's history


def order_path_from_events(stored_events: Iterable[StoredEvent]) -> list[Step]:
    """The (source, action, target) steps an order took, from its stored events in version order.

    Creation and item events are not steps; every other event is a transition, whatever name order.yaml
    gave it; one this code cannot read (e.g. of an unknown old schema) raises DiagramError.
    """
    path: list[Step] = []
    for stored in stored_events:
        try:
            event = decode(stored)
        except (ValueError, KeyError, TypeError) as exc:
            raise DiagramError(f"order {stored.stream_id!r}: cannot read event {stored.type!r} "
                               f"at version {stored.version} ({exc}); cannot draw its path") from None
        if isinstance(event, OrderTransitioned):
            path.append((event.source, event.action, event.target))
    return path


async def load_order_path(store: EventStore, order_id: str, definition: Definition) -> tuple[list[Step], str]:
    """An order's path and current state, read from its stream; OrderNotFoundError if it has none."""
    stored = await store.load(order_id)
    if not stored:
        raise OrderNotFoundError(order_id)
    path = order_path_from_events(stored)
    return path, path[-1][2] if path else definition.initial


async def render_order_diagram(store: EventStore, order_id: str, definition: Definition,
                               fmt: str = "svg") -> bytes:
    """One order's diagram from its stream: current state, path taken and actions allowed now.

    Raises OrderNotFoundError when the order has no events, DiagramError when it cannot be drawn.
    """
    path, current = await load_order_path(store, order_id, definition)
    return render_diagram(definition, fmt, path=path, current=current, title=order_title(order_id, definition))


def order_title(order_id: str, definition: Definition) -> str:
    return f"order {order_id} ({definition.name} v{definition.version})"


# --------------------------------------------------------------------------- committed files


def stale_diagrams(definitions: Mapping[str, Definition], folder: str | Path,
                   formats: Sequence[str] = DEFAULT_FORMATS, orphans: bool = True) -> list[tuple[Path, str]]:
    """Files in `folder` that do not match the definitions, each with the reason.

    Every file of `formats` must exist; files of other formats are checked when present. Mermaid and
    DOT files are compared byte for byte; SVG and PNG by the DOT fingerprint stamped in them, so the
    check needs no Graphviz and passes whatever Graphviz version drew the files. With `orphans`,
    diagram files whose definition is gone are stale too.
    """
    out = Path(folder)
    stale: list[tuple[Path, str]] = []
    for name in sorted(definitions):
        definition = definitions[name]
        dot = dot_source(definition)
        for fmt in FORMATS:
            file = out / f"{name}.{fmt}"
            if fmt not in formats and not file.is_file():
                continue  # not asked for and not committed
            if not file.is_file():
                stale.append((file, "missing"))
                continue
            data = file.read_bytes()
            if fmt in ("svg", "png"):
                if read_stamp(data) != source_digest(dot):
                    stale.append((file, "drawn from another version of the definition"))
            elif data != render_diagram(definition, fmt):
                stale.append((file, "differs from the definition"))
    if orphans and out.is_dir():
        for file in sorted(out.iterdir()):
            if file.suffix[1:] in FORMATS and file.stem not in definitions:
                stale.append((file, "no definition of that name"))
    return stale
