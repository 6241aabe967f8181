"""A warning's evidence as a directed graph drawn in SVG on the server: a pure function of the warning.

Nodes are the accounts, the external sinks (cards, merchants) and, when the warning is about one loan, the
loan; edges are the moves of money the evidence records (stream.offline.evidence_view.money_flow), labelled with
what the warning knows of each: transaction id, amount, time. The layout is layered: a node's column is its
distance from where the money starts (breadth first, so a cycle closes backwards), its row its order of
appearance in that column. The traced path (the evidence's first path) is highlighted; the origin and the
exits are marked. Every id is ledger text, so every string is XML-escaped, and ids never become element
names or attribute names, only escaped attribute values and text.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from ..model.timefmt import format_ts
from ..model.warning import EarlyWarning
from ..offline.evidence_view import MoneyFlow, money_flow, printable

COLUMN_W = 330
ROW_H = 100
NODE_W = 170
NODE_H = 40
MARGIN = 30
LABEL_CHARS = 30
LOAN_NODE = "\x00loan"          # no ledger id can be this: ids are printable text


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    role: str                   # account | sink | origin | requester
    column: int
    row: int

    @property
    def x(self) -> int:
        return MARGIN + self.column * COLUMN_W

    @property
    def y(self) -> int:
        return MARGIN + self.row * ROW_H


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: tuple[str, ...]
    traced: bool


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def layout(warning: EarlyWarning) -> Layout:
    flow = money_flow(warning)
    edges: list[Edge] = []
    traced = _traced_pairs(warning)
    if flow.origin is not None:
        start = flow.origin.borrower or (flow.steps[0].src if flow.steps else None)
        if start is not None:
            origin = flow.origin
            edges.append(Edge(LOAN_NODE, start, tuple(part for part in (
                origin.txn_id, origin.amount, f"disbursed {format_ts(origin.at)}" if origin.borrower
                else "traced from the loan") if part), traced=True))
    for step in flow.steps:
        amount = f"{step.amount} {step.note}" if step.amount and step.note else step.amount or step.note
        label = tuple(part for part in (step.txn_id, amount, format_ts(step.at) if step.at is not None else None)
                      if part)
        edges.append(Edge(step.src, step.dst, label, traced=(step.src, step.dst) in traced))
    order: list[str] = []
    for edge in edges:
        for node in (edge.src, edge.dst):
            if node not in order:
                order.append(node)
    for account in warning.accounts:          # every account of the evidence is drawn, linked or not
        if account not in order:
            order.append(account)
    columns = _columns(order, edges)
    rows: dict[int, int] = {}
    nodes = []
    for node_id in order:
        column = columns[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append(Node(node_id, _label(node_id, warning), _role(node_id, flow), column, row))
    width = 2 * MARGIN + max(columns.values(), default=0) * COLUMN_W + NODE_W
    height = 2 * MARGIN + (max(rows.values(), default=1) - 1) * ROW_H + NODE_H + 20
    return Layout(tuple(nodes), tuple(edges), width, height)


def _traced_pairs(warning: EarlyWarning) -> set[tuple[str, str]]:
    paths = warning.evidence.get("paths")
    if not isinstance(paths, list) or not paths or not isinstance(paths[0], list):
        return set()
    path = [node for node in paths[0] if isinstance(node, str)]
    return set(zip(path, path[1:]))


def _columns(order: list[str], edges: list[Edge]) -> dict[str, int]:
    """Breadth first from the nodes no edge reaches (or the first node): each node's column is its distance."""
    out: dict[str, list[str]] = {}
    reached = set()
    for edge in edges:
        out.setdefault(edge.src, []).append(edge.dst)
        reached.add(edge.dst)
    columns: dict[str, int] = {}
    frontier = [n for n in order if n not in reached and n in out] or order[:1]
    for node in frontier:
        columns[node] = 0
    while frontier:
        following = []
        for node in frontier:
            for target in out.get(node, ()):
                if target not in columns:
                    columns[target] = columns[node] + 1
                    following.append(target)
        frontier = following
    last = max(columns.values(), default=-1)
    for node in order:                          # unreached: a separate part, or a lone account
        if node not in columns:
            columns[node] = last + 1 if node not in out else 0
    return columns


def _label(node_id: str, warning: EarlyWarning) -> str:
    return f"loan {warning.subject}" if node_id == LOAN_NODE else node_id


def _role(node_id: str, flow: MoneyFlow) -> str:
    if node_id == LOAN_NODE:
        return "origin"
    if node_id in flow.external:
        return "sink"
    if node_id == flow.requester:
        return "requester"
    return "account"


def _short(text: str) -> str:
    text = printable(text)
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _e(text: str) -> str:
    return escape(printable(text), quote=True)


def to_svg(warning: EarlyWarning) -> str:
    """The evidence graph as one <svg> element (no script, no external reference, no inline style)."""
    plan = layout(warning)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="evidence-graph" role="img" '
             f'width="{plan.width}" height="{plan.height}" viewBox="0 0 {plan.width} {plan.height}">',
             f"<title>{_e(f'evidence of {warning.warning_id}')}</title>",
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>']
    positions = {node.id: node for node in plan.nodes}
    for edge in plan.edges:
        a, b = positions[edge.src], positions[edge.dst]
        x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
        x2, y2 = b.x, b.y + NODE_H // 2
        if b.column <= a.column:                # backwards (a cycle closing) or same column: bend below
            x1, x2 = a.x + NODE_W // 2, b.x + NODE_W // 2
            y1, y2 = a.y + NODE_H, b.y + NODE_H
            mid_y = max(y1, y2) + 30
            d = f"M {x1} {y1} C {x1} {mid_y}, {x2} {mid_y}, {x2} {y2}"
            lx, ly = (x1 + x2) // 2, mid_y - 4
        else:
            d = f"M {x1} {y1} L {x2} {y2}"
            lx, ly = (x1 + x2) // 2, (y1 + y2) // 2 - 4
        cls = "edge traced" if edge.traced else "edge"
        parts.append(f'<g class="{cls}" data-src="{_e(edge.src)}" data-dst="{_e(edge.dst)}">'
                     f'<title>{_e(" | ".join(edge.label) or "transfer")}</title>'
                     f'<path d="{d}" marker-end="url(#arrow)"/>')
        for number, line in enumerate(edge.label):
            parts.append(f'<text x="{lx}" y="{ly - 12 * (len(edge.label) - 1 - number)}" '
                         f'text-anchor="middle">{_e(_short(line))}</text>')
        parts.append("</g>")
    for node in plan.nodes:
        shown = node.label if node.role == "origin" else node.id
        parts.append(f'<g class="node {node.role}" data-id="{_e(shown)}"><title>{_e(shown)} ({node.role})</title>'
                     f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                     f'<text x="{node.x + NODE_W // 2}" y="{node.y + NODE_H // 2 + 5}" '
                     f'text-anchor="middle">{_e(_short(shown))}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)
