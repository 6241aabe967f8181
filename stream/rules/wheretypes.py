"""Names and types of a `where`, checked against the rule's schema before any event is seen.

At run time a filter that reads a field no event has, or compares a number with text, raises or is false on every
event: the rule silently never fires. Both are visible in the expression alone, so they are refused when the
rules load, in words an analyst can act on (`transfer.amount > "100"`: write 100 without quotes).

Only what is certain is refused: a value of unknown type (an extra input field, `a or b` over different types)
passes, and None is accepted wherever a comparison with it is legal (optional fields are None on some events).
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .schema import BOOLEAN, NUMBER, TEXT, UNKNOWN, WhereSchema

NONE, LIST, EVENT = "none", "list", "event"
_WORDS = {TEXT: "text", NUMBER: "a number", BOOLEAN: "true/false", NONE: "None", LIST: "a list",
          EVENT: "an event"}
_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
        ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_VERBS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Mod: "take %",
          ast.FloorDiv: "divide"}
_SHOWN = 60


class Refused(ValueError):
    """The expression names something the rule cannot read, or compares what can never match."""


@dataclass(frozen=True)
class Value:
    kind: str                                # TEXT, NUMBER, BOOLEAN, NONE, LIST, EVENT or UNKNOWN
    node: ast.AST
    items: tuple["Value", ...] = ()

    @property
    def shown(self) -> str:
        text = ast.unparse(self.node)
        return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."

    @property
    def words(self) -> str:
        return _WORDS.get(self.kind, "a value")

    @property
    def known(self) -> bool:
        return self.kind != UNKNOWN


def check(tree: ast.expr, schema: WhereSchema) -> list[str]:
    """Raise `Refused` for the first name or comparison that can never work; return warnings (notes)."""
    notes: list[str] = []
    _Checker(schema, notes).infer(tree)
    return notes


class _Checker:
    def __init__(self, schema: WhereSchema, notes: list[str]) -> None:
        self.schema = schema
        self.notes = notes

    def infer(self, node: ast.AST) -> Value:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            for child in ast.iter_child_nodes(node):
                self.infer(child)
            return Value(UNKNOWN, node)
        return method(node)

    # -- leaves --------------------------------------------------------------------------------------------

    def _Constant(self, node: ast.Constant) -> Value:
        value = node.value
        if value is None:
            return Value(NONE, node)
        if isinstance(value, bool):
            return Value(BOOLEAN, node)
        if isinstance(value, (int, float, Decimal)):
            return Value(NUMBER, node)
        if isinstance(value, str):
            return Value(TEXT, node)
        return Value(UNKNOWN, node)

    def _Name(self, node: ast.Name) -> Value:
        self.root(node.id)
        return Value(EVENT, node)

    def _Attribute(self, node: ast.Attribute) -> Value:
        assert isinstance(node.value, ast.Name)            # expr._check allows fields of a root only
        root, name = node.value.id, node.attr
        fields = self.root(root, name)
        if name not in fields:
            raise Refused(f"unknown field {root}.{name}{self.suggest(root, name)}; {root} has "
                          f"{', '.join(sorted(fields))}. An input field outside the event contract is read as "
                          f'extra({root}, "{name}")')
        return Value(fields[name], node)

    def root(self, root: str, field: str | None = None) -> dict[str, str]:
        """The fields of `root`, or `Refused` when it is always None for this rule."""
        spec = self.schema.roots[root]
        if spec.fields is not None:
            return dict(spec.fields)
        readable = " and ".join(f"{r}.*" for r in self.schema.readable)
        what = f"{root}.{field}" if field else f"`{root}`"
        hint = self.suggest(root, field) if field else ""
        raise Refused(f"{what}: {spec.why_none}{hint}; {self.schema.what} reads {readable}")

    def suggest(self, root: str, name: str) -> str:
        """The nearest name this rule can read: a close field of the same root, the same field of another root,
        or a close field of another root."""
        fields = self.schema.roots[root].fields or {}
        close = difflib.get_close_matches(name, sorted(fields), n=1, cutoff=0.6)
        if close:
            return f" (did you mean {root}.{close[0]}?)"
        others = [r for r in self.schema.readable if r != root]
        for other in others:
            if name in (self.schema.roots[other].fields or {}):
                return f" (did you mean {other}.{name}?)"
        for other in others:
            close = difflib.get_close_matches(name, sorted(self.schema.roots[other].fields or {}), n=1, cutoff=0.6)
            if close:
                return f" (did you mean {other}.{close[0]}?)"
        return ""

    # -- containers and operators --------------------------------------------------------------------------

    def _List(self, node: ast.List | ast.Tuple | ast.Set) -> Value:
        return Value(LIST, node, tuple(self.infer(item) for item in node.elts))

    _Tuple = _Set = _List

    def _UnaryOp(self, node: ast.UnaryOp) -> Value:
        operand = self.infer(node.operand)
        if isinstance(node.op, ast.Not):
            return Value(BOOLEAN, node)
        if operand.kind in (NUMBER, UNKNOWN):
            return Value(operand.kind, node)
        raise Refused(f"{ast.unparse(node)[:_SHOWN]}: a sign goes before a number; {operand.shown} is "
                      f"{operand.words}, so it fails on every event and the rule never fires")

    def _BinOp(self, node: ast.BinOp) -> Value:
        left, right = self.infer(node.left), self.infer(node.right)
        a, b, op = left.kind, right.kind, type(node.op)
        if UNKNOWN in (a, b):
            return Value(UNKNOWN, node)
        if a == b == NUMBER:
            return Value(NUMBER, node)
        if op is ast.Add and a == b and a in (TEXT, LIST):
            return Value(a, node)
        if op is ast.Mult and {a, b} in ({TEXT, NUMBER}, {LIST, NUMBER}):
            return Value(TEXT if TEXT in (a, b) else LIST, node)
        if op is ast.Mod and a == TEXT:
            return Value(TEXT, node)
        raise Refused(f"cannot {_VERBS[op]} {left.words} ({left.shown}) and {right.words} ({right.shown}): "
                      f"it fails on every event and the rule never fires")

    def _BoolOp(self, node: ast.BoolOp) -> Value:
        return _common(node, [self.infer(value) for value in node.values])

    def _IfExp(self, node: ast.IfExp) -> Value:
        self.infer(node.test)
        return _common(node, [self.infer(node.body), self.infer(node.orelse)])

    def _Compare(self, node: ast.Compare) -> Value:
        values = [self.infer(node.left)] + [self.infer(c) for c in node.comparators]
        for op, left, right in zip(node.ops, values, values[1:]):
            _check_comparison(type(op), left, right)
        return Value(BOOLEAN, node)

    # -- calls ---------------------------------------------------------------------------------------------

    def _Call(self, node: ast.Call) -> Value:
        assert isinstance(node.func, ast.Name)             # expr._check allows the listed functions only
        name = node.func.id
        if name == "extra":
            return self.extra(node)
        args = [self.infer(arg) for arg in node.args]
        if name in ("lower", "upper"):
            _takes(name, args[0], (TEXT, NONE), "reads text")
            return Value(TEXT, node)
        if name in ("startswith", "endswith"):
            _takes(name, args[0], (TEXT, NONE), "reads text")
            _takes(name, args[1], (TEXT,), "compares with text")
            return Value(BOOLEAN, node)
        if name == "len":
            _takes(name, args[0], (TEXT, LIST, NONE), "counts the characters of text or the items of a list")
            return Value(NUMBER, node)
        if name == "abs":
            _takes(name, args[0], (NUMBER,), "takes a number")
            return Value(NUMBER, node)
        if name in ("min", "max"):
            first, second = args
            if first.known and second.known and (first.kind != second.kind or first.kind not in (NUMBER, TEXT)):
                raise Refused(f"{name}() compares two numbers (or two texts); {first.shown} is {first.words} and "
                              f"{second.shown} is {second.words}, so it fails on every event")
            return _common(node, args)
        if name == "in_list":
            return Value(BOOLEAN, node)
        if name == "listed":
            _takes(name, args[0], (TEXT, NONE), "looks up an identifier (text: a card, device id, IP, ...)")
            return Value(BOOLEAN, node)
        return Value(UNKNOWN, node)

    def extra(self, node: ast.Call) -> Value:
        """extra(root, "name"): the root must be readable and the name given as text, not a standard field."""
        root, name = node.args
        if not (isinstance(root, ast.Name) and root.id in self.schema.roots):
            raise Refused(f'extra() reads a field of {", ".join(self.schema.readable)}, like '
                          f'extra(event, "app_version"); got {ast.unparse(root)[:_SHOWN]}')
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value):
            raise Refused(f'extra() needs the field name as quoted text, like extra({root.id}, "app_version"); '
                          f"got {ast.unparse(name)[:_SHOWN]}")
        fields = self.root(root.id)
        if name.value in fields:
            raise Refused(f'{name.value} is a standard field of {root.id}: write {root.id}.{name.value}, not '
                          f'extra({root.id}, "{name.value}") (which is always None)')
        close = self.suggest(root.id, name.value)
        if close:
            self.notes.append(f'extra({root.id}, "{name.value}") reads an input field outside the event contract'
                              f"{close}")
        return Value(UNKNOWN, node)


def _common(node: ast.AST, values: list[Value]) -> Value:
    kinds = {value.kind for value in values}
    return Value(kinds.pop() if len(kinds) == 1 else UNKNOWN, node)


def _takes(function: str, arg: Value, kinds: tuple[str, ...], does: str) -> None:
    if arg.known and arg.kind not in kinds:
        raise Refused(f"{function}() {does}; {arg.shown} is {arg.words}, so it never gives what you expect")


def _check_comparison(op: type, left: Value, right: Value) -> None:
    if op in (ast.Is, ast.IsNot) or not (left.known and right.known):
        return
    symbol = _OPS[op]
    if op in (ast.In, ast.NotIn):
        _check_membership(symbol, left, right)
        return
    if op in (ast.Eq, ast.NotEq):
        if NONE in (left.kind, right.kind) or left.kind == right.kind:
            return
        always = "false" if op is ast.Eq else "true"
        raise Refused(f"{left.shown} is {left.words} and {right.shown} is {right.words}: they are never equal, so "
                      f"`{symbol}` is always {always}{_quote_hint(left, right)}")
    if NONE in (left.kind, right.kind):
        raise Refused(f"`{symbol}` cannot order None ({left.shown} {symbol} {right.shown}); test for a missing "
                      f"value with `is None` or `is not None`")
    if left.kind == right.kind and left.kind in (NUMBER, TEXT):
        return
    if left.kind == right.kind:
        raise Refused(f"`{symbol}` orders numbers or text; {left.shown} and {right.shown} are {left.words}")
    raise Refused(f"{left.shown} is {left.words} and {right.shown} is {right.words}: `{symbol}` between them "
                  f"fails on every event and the rule never fires{_quote_hint(left, right)}")


def _check_membership(symbol: str, left: Value, right: Value) -> None:
    if right.kind == LIST:
        for item in right.items:
            if item.known and left.kind not in (NONE, item.kind) and item.kind != NONE:
                raise Refused(f"{left.shown} is {left.words} but the list after `{symbol}` holds {item.shown} "
                              f"({item.words}), which it never equals{_quote_hint(left, item)}")
        return
    if right.kind == TEXT:
        if left.kind != TEXT:
            raise Refused(f"`{symbol}` text looks for a piece of text in {right.shown}; {left.shown} is "
                          f"{left.words}, so it fails on every event")
        return
    raise Refused(f"`{symbol}` needs a list or text on its right; {right.shown} is {right.words}")


def _quote_hint(a: Value, b: Value) -> str:
    """The usual slip behind a number/text mismatch: quotes around a number, or none around a code."""
    by_kind = {a.kind: a, b.kind: b}
    if set(by_kind) != {NUMBER, TEXT}:
        return ""
    number, text = by_kind[NUMBER], by_kind[TEXT]
    if isinstance(text.node, ast.Constant):                      # transfer.amount > "100"
        written = text.node.value.strip()
        try:
            finite = Decimal(written).is_finite()
        except (InvalidOperation, ValueError):
            return ""
        return f"; write {written} without quotes" if finite else ""
    if isinstance(number.node, ast.Constant) and isinstance(number.node.value, int):    # merchant_category == 6011
        return f'; write "{number.node.value}" in quotes'
    return ""
