"""A warning's evidence drawn as the path of the money: indented text for a terminal, DOT for Graphviz.

An analyst triaging a warning first asks where the money went. The evidence answers it only partly: every
kind records its paths as lists of node ids, but per-transfer amounts, transaction ids and times are kept
only where a kind records them (a cycle's `amounts`, the transaction ids of a single chain, the loan's amount
and time). So the drawing states what the warning says and nothing more: a step without an amount or a time
is drawn bare rather than filled in with a guess.

Every id comes from the ledger, which is attacker-controlled: text is made printable before it reaches a
terminal (no escape sequences, no bidirectional overrides), and DOT strings are quoted and escaped, with the
nodes named n0, n1, ... so no id is ever DOT syntax.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..model.timefmt import format_ts
from ..model.money import format_minor
from ..model.warning import EarlyWarning

EXTERNAL_PREFIXES = ("card:", "merchant:")   # what the graph names a transfer's destination outside the ledger
# Kinds whose evidence is one chain of transfers: their transaction ids (after the loan's) follow the chain.
CHAIN_KINDS = frozenset({"rapid_cashout", "layering", "cycle"})
# Kinds whose warning is about one loan, named by the subject: the loan is where the money starts.
LOAN_ORIGIN_AMOUNT = {"rapid_cashout": "loan_amount", "layering": "origin_amount"}


@dataclass(frozen=True, slots=True)
class Step:
    """One move of money between two nodes of the evidence, with what the warning knows about it."""

    src: str
    dst: str
    txn_id: str | None = None
    amount: str | None = None        # formatted with its currency, e.g. "4312.35 CNY"
    at: int | None = None            # epoch ms
    note: str | None = None          # what the amount or time means, when it is not the plain transfer


@dataclass(frozen=True, slots=True)
class Origin:
    """The loan the money started as."""

    loan_id: str
    amount: str | None
    at: int
    txn_id: str | None
    borrower: str | None             # the account it was paid into, when the evidence starts there


@dataclass(frozen=True, slots=True)
class MoneyFlow:
    origin: Origin | None
    steps: tuple[Step, ...]          # distinct (src, dst) pairs, in the order the evidence names them
    external: frozenset[str]         # nodes outside the ledger: where the money left (card:, merchant:, sinks)
    requester: str | None = None     # device_burst: the device or IP the loans were requested from


def printable(text: str) -> str:
    """`text` with every control, format and line-separator character shown as an escape (\\x1b, \\u202e), so an
    id cannot move the cursor, recolour the terminal or reorder what is shown around it."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def money_flow(warning: EarlyWarning) -> MoneyFlow:
    """What the warning's evidence says about the money's way: its origin, each step, and where it left."""
    evidence = warning.evidence
    if warning.kind == "device_burst" and isinstance(evidence.get("requester"), str):
        requester = evidence["requester"]
        steps = tuple(Step(requester, account, note="loan requested") for account in warning.accounts)
        return MoneyFlow(origin=None, steps=steps, external=frozenset(), requester=requester)
    paths = _paths(evidence.get("paths"))
    pairs = list(dict.fromkeys((a, b) for path in paths for a, b in zip(path, path[1:]) if a != b))
    origin = _origin(warning, paths)
    annotated = _chain_annotations(warning, paths, pairs, origin)
    steps = tuple(annotated.get(pair, Step(*pair)) for pair in pairs)
    return MoneyFlow(origin=origin, steps=steps, external=_external(warning, paths))


def _paths(value: Any) -> list[tuple[str, ...]]:
    """The evidence's paths, keeping only well-formed ones (lists of two or more ids): the evidence comes from
    the store or a file, and a damaged path should shorten the drawing, not stop it."""
    if not isinstance(value, list):
        return []
    return [tuple(path) for path in value
            if isinstance(path, list) and len(path) >= 2 and all(isinstance(node, str) for node in path)]


def _origin(warning: EarlyWarning, paths: list[tuple[str, ...]]) -> Origin | None:
    amount_key = LOAN_ORIGIN_AMOUNT.get(warning.kind)
    if amount_key is None or warning.loan_ids != (warning.subject,):
        return None           # not about one loan (layering of an inflow of unknown origin, fan-in of many loans)
    amount = warning.evidence.get(amount_key)
    borrower = paths[0][0] if warning.kind == "rapid_cashout" and paths else None   # its paths start at the borrower
    return Origin(loan_id=warning.subject, amount=f"{amount} {warning.currency}" if isinstance(amount, str) else None,
                  at=warning.first_ts, txn_id=warning.txn_ids[0] if warning.txn_ids else None, borrower=borrower)


def _chain_annotations(warning: EarlyWarning, paths: list[tuple[str, ...]], pairs: list[tuple[str, str]],
                       origin: Origin | None) -> dict[tuple[str, str], Step]:
    """Transaction ids, amounts and the completing time of a single chain, where the kind records them in
    chain order; nothing for stars (fan-in, fan-out, gathers and scatters), whose ids are in time order only."""
    if warning.kind not in CHAIN_KINDS or len(paths) != 1 or len(pairs) != len(paths[0]) - 1:
        return {}
    hops = warning.evidence.get("hops")
    if isinstance(hops, int) and hops != len(pairs):
        return {}            # the path names an account once however often the money passed it: steps unknown
    hop_txns = warning.txn_ids[1:] if origin is not None else warning.txn_ids
    txns = hop_txns if len(hop_txns) == len(pairs) else (None,) * len(pairs)
    amounts: list[str | None] = [None] * len(pairs)
    notes: list[str | None] = [None] * len(pairs)
    recorded = warning.evidence.get("amounts")
    if isinstance(recorded, list) and len(recorded) == len(pairs) and all(isinstance(a, str) for a in recorded):
        amounts = [f"{amount} {warning.currency}" for amount in recorded]
    elif warning.kind == "rapid_cashout":
        amounts[-1], notes[-1] = _money(warning), "of the loan reached the sink"
    elif warning.kind == "layering":
        amounts[-1], notes[-1] = _money(warning), f"of {'the loan' if origin else 'the inflow'} carried"
    times: list[int | None] = [None] * len(pairs)
    if txns[-1] is not None:                 # the chain ends with the transfer that completed the pattern
        times[-1] = warning.event_ts
    return {pair: Step(*pair, txn_id=txn, amount=amount, at=at, note=note)
            for pair, txn, amount, at, note in zip(pairs, txns, amounts, times, notes)}


def _money(warning: EarlyWarning) -> str:
    return f"{format_minor(warning.amount)} {warning.currency}"


def _external(warning: EarlyWarning, paths: list[tuple[str, ...]]) -> frozenset[str]:
    """Nodes where money left the ledger: the sinks a kind names, ids of the graph's external form, and, while
    the warning's account list is complete, nodes of the paths that are not accounts."""
    sinks = warning.evidence.get("sinks")
    named = {node for node in sinks if isinstance(node, str)} if isinstance(sinks, list) else set()
    truncated = warning.evidence.get("truncated")
    accounts_complete = not (isinstance(truncated, Mapping) and "accounts" in truncated)
    accounts = set(warning.accounts)
    nodes = {node for path in paths for node in path}
    return frozenset(node for node in nodes if node in named or node.startswith(EXTERNAL_PREFIXES)
                     or (accounts_complete and accounts and node not in accounts))


# -- text ----------------------------------------------------------------------------------------------------------

def step_label(step: Step) -> str:
    """What is known of one transfer, in the order an analyst reads a statement line: id, amount, time."""
    amount = f"{step.amount} {step.note}" if step.amount and step.note else step.amount or step.note
    parts = (step.txn_id, amount, format_ts(step.at) if step.at is not None else None)
    return "  ".join(printable(part) for part in parts if part)


def path_lines(warning: EarlyWarning) -> list[str]:
    """The money's way as indented lines: the loan first when the warning is about one, then a tree from where
    the money starts; the senders into one hub (fan-in, gather-scatter) are listed before the hub's tree."""
    flow = money_flow(warning)
    lines: list[str] = []
    if not flow.steps:
        return lines + ["(the evidence names no path)"]
    children: dict[str, list[Step]] = {}
    for step in flow.steps:
        children.setdefault(step.src, []).append(step)
    receiving = {step.dst for step in flow.steps}
    roots = [node for node in children if node not in receiving] or [flow.steps[0].src]
    shown: set[str] = set()
    expanded: set[str] = set()
    hub = _hub(flow.steps) if len(roots) > 1 else None
    if hub is not None:
        for step in flow.steps:
            if step.dst == hub:
                sender = _node_text(step.src, flow, shown)
                lines.append(f"{sender} ─► {_with_label(_node_text(hub, flow, shown), step)}")
        roots = [hub] if hub in children else []
    trees = [_tree(root, children, flow, shown, expanded) for root in roots]
    origin = flow.origin
    if origin is None:
        return lines + [line for tree in trees for line in tree]
    parts = (f"loan {origin.loan_id}", origin.amount, f"disbursed {format_ts(origin.at)}", origin.txn_id)
    lines.insert(0, "  ".join(printable(part) for part in parts if part))
    for number, tree in enumerate(trees):
        last = number == len(trees) - 1
        arrow = "─►" if origin.borrower else "┄►"      # a layering run may start some hops after the borrower
        head = f"{'└' if last else '├'}{arrow} {tree[0]}"
        if not origin.borrower:
            head += "  (traced from the loan)"
        lines += [head] + [("    " if last else "│   ") + line for line in tree[1:]]
    return lines


def _hub(steps: Sequence[Step]) -> str | None:
    """The one node every step touches, if there is one: the collector of a fan-in, the hub of a gather-scatter."""
    common = {steps[0].src, steps[0].dst}
    for step in steps[1:]:
        common &= {step.src, step.dst}
    return next(iter(common)) if len(common) == 1 else None


def _tree(root: str, children: Mapping[str, list[Step]], flow: MoneyFlow, shown: set[str],
          expanded: set[str]) -> list[str]:
    """Depth first from `root`, each node expanded once: a node reached again is marked and not followed, so a
    cycle ends where it started and a shared hop is drawn once."""
    lines = [_node_text(root, flow, shown)]
    expanded.add(root)
    stack = _below(root, children, "")
    while stack:
        step, indent, last = stack.pop()
        node = step.dst
        text = _node_text(node, flow, shown)
        again = node in expanded
        if again and node == root:
            text += "  (back at the start)"
        elif again and children.get(node):
            text += "  (continues above)"
        lines.append(f"{indent}{'└─► ' if last else '├─► '}{_with_label(text, step)}")
        if not again:
            expanded.add(node)
            stack += _below(node, children, indent + ("    " if last else "│   "))
    return lines


def _below(node: str, children: Mapping[str, list[Step]], indent: str) -> list[tuple[Step, str, bool]]:
    """The steps out of `node` as stack entries (the first on top), each knowing whether it is the last."""
    steps = children.get(node, [])
    return [(step, indent, index == len(steps) - 1) for index, step in reversed(list(enumerate(steps)))]


def _node_text(node: str, flow: MoneyFlow, shown: set[str]) -> str:
    """The node, with what it is the first time it is named."""
    text = printable(node)
    if node in shown:
        return text
    shown.add(node)
    if node in flow.external:
        return text + "  (exit: money left the ledger)"
    if flow.origin is not None and node == flow.origin.borrower:
        return text + "  (borrower)"
    if node == flow.requester:
        return text + "  (requester of the loans)"
    return text


def _with_label(text: str, step: Step) -> str:
    label = step_label(step)
    return f"{text}  [{label}]" if label else text


# -- DOT -----------------------------------------------------------------------------------------------------------

def dot_string(text: str) -> str:
    """A DOT quoted string showing `text` literally: backslashes and quotes escaped, controls made visible."""
    return '"' + _dot_escaped(text) + '"'


def dot_label(*lines: str | None) -> str:
    """Several lines as one quoted DOT label, each escaped, joined by DOT's own line break; None lines left out."""
    return '"' + "\\n".join(_dot_escaped(line) for line in lines if line) + '"'


def _dot_escaped(text: str) -> str:
    return printable(text).replace("\\", "\\\\").replace('"', '\\"')


def to_dot(warning: EarlyWarning) -> str:
    """The evidence as a Graphviz digraph: accounts as boxes, exits as double octagons, the loan (or the device
    the loans were requested from) as an ellipse, transfers as edges labelled with what the warning knows."""
    flow = money_flow(warning)
    title = dot_label(f"{warning.rule_id} ({warning.kind}, {warning.severity})", warning.warning_id, warning.summary)
    out = ["digraph warning {", "  rankdir=LR;", f"  graph [labelloc=t, label={title}];",
           '  node [shape=box, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];']
    names: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in names:
            names[name] = f"n{len(names)}"
            shape = "doubleoctagon" if name in flow.external else "ellipse" if name == flow.requester else None
            out.append(f"  {names[name]} [label={dot_string(name)}" + (f", shape={shape}" if shape else "") + "];")
        return names[name]

    origin = flow.origin
    if origin is not None:
        label = dot_label(f"loan {origin.loan_id}", origin.amount, f"disbursed {format_ts(origin.at)}", origin.txn_id)
        out.append(f"  loan [shape=ellipse, label={label}];")
        start = origin.borrower or (flow.steps[0].src if flow.steps else None)
        if start is not None:
            how = "" if origin.borrower else ' [style=dashed, label="traced from the loan"]'
            out.append(f"  loan -> {node(start)}{how};")
    for step in flow.steps:
        src, dst = node(step.src), node(step.dst)
        amount = f"{step.amount} {step.note}" if step.amount and step.note else step.amount or step.note
        label = dot_label(step.txn_id, amount, format_ts(step.at) if step.at is not None else None)
        out.append(f"  {src} -> {dst}" + (f" [label={label}]" if label != '""' else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"
