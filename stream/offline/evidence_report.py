"""report.html of an evidence bundle: one printable, self-contained page for people who read evidence, not code.

No script, no external asset: the money's path is inline SVG laid out here (columns by distance from where the
money starts), the transfers are a table in time order read from the original event bytes, and the hashes that
tie the page to the chain are printed in full. Every id comes from the ledger and is escaped before it is shown.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from ..errors import EventError
from ..evidence.hashing import ChainRecord, EventSource
from ..model.events import Disbursement, parse_event
from ..model.money import format_minor
from ..model.timefmt import format_ts
from ..model.warning import EarlyWarning
from .evidence_view import money_flow, path_lines, printable, step_label

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; margin: 2em auto; max-width: 60em; color: #111; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; border-bottom: 1px solid #999; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; font-size: .9em; } td, th { border: 1px solid #bbb; padding: .25em .5em;
text-align: left; vertical-align: top; } th { background: #eee; } code, .hash { font-family: monospace;
font-size: .85em; word-break: break-all; } .note { color: #444; font-size: .9em; } svg { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; font-size: .85em; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; } table, svg { page-break-inside: avoid; } }
"""


def _e(text: Any) -> str:
    return html.escape(printable(str(text)), quote=True)


def render_report(warning: EarlyWarning, sources: Sequence[EventSource], record: ChainRecord,
                  checkpoint: Mapping[str, Any], rule_text: str, settings: Mapping[str, Any]) -> str:
    rows = [("Warning id", warning.warning_id), ("Rule", f"{warning.rule_id} (version {warning.rule_version})"),
            ("Typology", warning.kind), ("Severity", warning.severity), ("Subject", warning.subject),
            ("Amount", f"{format_minor(warning.amount)} {warning.currency}"),
            ("First event", format_ts(warning.first_ts)), ("Completing event", format_ts(warning.event_ts)),
            ("Detected at", format_ts(warning.detected_at)), ("Summary", warning.summary)]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Evidence for warning {_e(warning.warning_id)}</title><style>{CSS}</style></head><body>",
             f"<h1>Evidence for warning {_e(warning.warning_id)}</h1>",
             '<p class="note">Produced by <code>fundflow evidence export</code>. Whether this bundle is intact is '
             "decided by <code>fundflow evidence verify</code>, not by this page: see docs/evidence.md.</p>",
             "<h2>The warning</h2><table>"]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    parts.append("</table>")
    parts += ["<h2>Where the money went</h2>", svg_flow(warning), "<pre>",
              "\n".join(_e(line) for line in path_lines(warning)), "</pre>"]
    parts += ["<h2>The transfers, in time order</h2>", transfers_table(sources)]
    parts += ["<h2>The original records</h2><table><tr><th>Event</th><th>Kafka topic / partition / offset</th>"
              "<th>SHA-256 of the original bytes</th></tr>"]
    parts += [f"<tr><td>{_e(s.event_id)}</td><td>{_e(s.topic)} / {s.partition} / {s.offset}</td>"
              f'<td class="hash">{s.value_sha256}</td></tr>' for s in sorted(sources, key=lambda s: (s.ts, s.event_id))]
    parts.append("</table>")
    parts += ["<h2>The chain record and its signed checkpoint</h2><table>",
              f"<tr><th>Outbox partition, seq</th><td>{record.partition}, {record.seq}</td></tr>",
              *(f'<tr><th>{name}</th><td class="hash">{_e(value)}</td></tr>' for name, value in (
                  ("Warning SHA-256", record.warning_sha256), ("Events SHA-256", record.events_sha256),
                  ("Rule text SHA-256", record.rule_sha256), ("Detector settings SHA-256", record.settings_sha256),
                  ("Previous record", record.prev_hash),
                  ("This record", record.record_hash))),
              f"<tr><th>Checkpoint</th><td>seq {int(checkpoint['first_seq'])} to {int(checkpoint['last_seq'])}, "
              f"signed {_e(format_ts(int(checkpoint['signed_ms'])))}</td></tr>",
              f'<tr><th>Merkle root</th><td class="hash">{_e(checkpoint["merkle_root"])}</td></tr>',
              f'<tr><th>Signing key id</th><td class="hash">{_e(checkpoint["key_id"])}</td></tr>',
              f'<tr><th>Signature</th><td class="hash">{_e(checkpoint["signature"])}</td></tr></table>']
    parts += ["<h2>Detector settings and rule</h2><table>",
              *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in settings.items()), "</table>",
              "<p>Rule text at this version (canonical form):</p>", f"<pre>{_e(rule_text or '(not recorded)')}</pre>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def transfers_table(sources: Sequence[EventSource]) -> str:
    rows = []
    for source in sources:
        try:
            event = parse_event(source.value)
        except EventError as exc:
            rows.append((source.ts, source.event_id, "(unreadable)", "", "", "", str(exc)[:120]))
            continue
        if isinstance(event, Disbursement):
            rows.append((event.ts, event.event_id, "loan disbursed", f"loan {event.loan_id}", event.account,
                         f"{format_minor(event.amount)} {event.currency}", event.product or ""))
        else:
            rows.append((event.ts, event.event_id, "transfer", event.src, event.dst,
                         f"{format_minor(event.amount)} {event.currency}", event.channel))
    rows.sort(key=lambda r: (r[0], r[1]))
    out = ["<table><tr><th>#</th><th>Time (UTC)</th><th>Event</th><th>What</th><th>From</th><th>To</th>"
           "<th>Amount</th><th>Channel / product</th></tr>"]
    for number, (ts, event_id, what, src, dst, amount, how) in enumerate(rows, start=1):
        out.append(f"<tr><td>{number}</td><td>{_e(format_ts(ts)) if ts >= 0 else ''}</td><td>{_e(event_id)}</td>"
                   f"<td>{_e(what)}</td><td>{_e(src)}</td><td>{_e(dst)}</td><td>{_e(amount)}</td><td>{_e(how)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def svg_flow(warning: EarlyWarning) -> str:
    """The evidence as boxes (accounts), double-edged boxes (exits) and arrows, in columns by hop."""
    flow = money_flow(warning)
    steps = list(flow.steps)
    if not steps:
        return "<p>(the evidence names no path)</p>"
    nodes: list[str] = []
    for step in steps:
        for node in (step.src, step.dst):
            if node not in nodes:
                nodes.append(node)
    origin_label = f"loan {flow.origin.loan_id}" if flow.origin is not None else None
    receiving = {s.dst for s in steps}
    queue = [node for node in nodes if node not in receiving] or [nodes[0]]
    depth = {node: 0 for node in queue}
    index = 0
    while index < len(queue):                       # breadth first: a node's column is its first distance
        node = queue[index]
        index += 1
        for step in steps:
            if step.src == node and step.dst not in depth:
                depth[step.dst] = depth[node] + 1
                queue.append(step.dst)
    for node in nodes:
        depth.setdefault(node, 0)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(depth[node], []).append(node)
    width, height, gap_x, gap_y = 170, 44, 80, 30
    offset_x = (width + gap_x) if origin_label else 20
    position = {}
    for column, members in columns.items():
        for row, node in enumerate(members):
            position[node] = (offset_x + column * (width + gap_x), 20 + row * (height + gap_y))
    total_w = offset_x + (max(columns) + 1) * (width + gap_x)
    total_h = 40 + max(len(m) for m in columns.values()) * (height + gap_y)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {total_h}" width="{total_w}" '
           f'height="{total_h}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>']
    if origin_label:
        start = flow.origin.borrower or steps[0].src
        x, y = position[start]
        out.append(f'<ellipse cx="{20 + width / 2}" cy="{y + height / 2}" rx="{width / 2}" ry="{height / 2}" '
                   f'fill="#fff8e0" stroke="#333"/>')
        out.append(f'<text x="{20 + width / 2}" y="{y + height / 2 + 4}" text-anchor="middle">{_e(_short(origin_label))}</text>')
        dashed = "" if flow.origin.borrower else ' stroke-dasharray="4 3"'
        out.append(f'<line x1="{20 + width}" y1="{y + height / 2}" x2="{x}" y2="{y + height / 2}" stroke="#333" '
                   f'marker-end="url(#arrow)"{dashed}/>')
    for step in steps:
        (x1, y1), (x2, y2) = position[step.src], position[step.dst]
        if x2 > x1:
            sx, sy, ex, ey = x1 + width, y1 + height / 2, x2, y2 + height / 2
        else:                                       # back to an earlier column (a cycle): below the boxes
            sx, sy, ex, ey = x1 + width / 2, y1 + height, x2 + width / 2, y2 + height
        out.append(f'<line x1="{sx}" y1="{sy}" x2="{ex}" y2="{ey}" stroke="#333" marker-end="url(#arrow)"/>')
        label = step_label(step)
        if label:
            out.append(f'<text x="{(sx + ex) / 2}" y="{(sy + ey) / 2 - 4}" text-anchor="middle" font-size="9">'
                       f'{_e(_short(label, 40))}</text>')
    for node, (x, y) in position.items():
        exit_node = node in flow.external
        fill = "#fde8e8" if exit_node else "#eef3fb"
        thick = ' stroke-width="2.5"' if exit_node else ""
        out.append(f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="4" fill="{fill}" stroke="#333"{thick}/>')
        out.append(f'<text x="{x + width / 2}" y="{y + height / 2 - 2}" text-anchor="middle">{_e(_short(node))}</text>')
        note = "exit: left the ledger" if exit_node else ("borrower" if flow.origin and node == flow.origin.borrower else "")
        if note:
            out.append(f'<text x="{x + width / 2}" y="{y + height / 2 + 12}" text-anchor="middle" font-size="9">{note}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
