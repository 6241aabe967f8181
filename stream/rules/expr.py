"""`where` expressions: a small, safe filter language over the names of `names.py`.

An expression is parsed once, checked against a whitelist of syntax (comparisons, `and`/`or`/`not`,
arithmetic, literals, `x in [...]`, attribute reads on the roots, calls to the functions below) and
compiled into a `Where` predicate evaluated by simpleeval's AST walker: never Python `eval`, no method
calls, no comprehensions, no dunder access. Everything an analyst can get wrong statically (syntax, an
unknown root, an unknown function or list, a field the rule's events do not have, a comparison of a number
with text) is reported at load time; `wheretypes` checks names and types against the rule's `schema`.

At run time an expression that reads a field of a root that is absent for this event
(`disbursement.amount` on a transfer whose loan is unknown) or that fails on the data (`None > 5`) is
false, and the failure is counted on the predicate, so a bad filter can never crash the detector.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from . import wheretypes
from .names import LISTED, extra_field
from .rawrule import did_you_mean as _did_you_mean
from .schema import ANY_RULE, ROOTS, WhereSchema

MAX_LENGTH = 2000      # a filter longer than this is a program, not a filter
# Levels of nesting of the parsed expression. Checking, hashing and evaluating an expression walk it recursively,
# so a deeper one (2,000 characters of `-` are 2,000 levels) would overflow the stack instead of being refused.
MAX_NESTING = 100

_ALLOWED_NODES = (
    ast.Expression, ast.Expr, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.FloorDiv,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.Name, ast.Load, ast.Attribute, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Call, ast.IfExp,
)


class ExprError(ValueError):
    """A `where` expression refused at load time; the message says what is wrong and what is allowed."""


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else None


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else None


def _startswith(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _endswith(value: Any, suffix: str) -> bool:
    return isinstance(value, str) and value.endswith(suffix)


def _len(value: Any) -> int:
    return 0 if value is None else len(value)


# name -> (implementation, number of arguments, one-line doc for the rule reference)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, str]] = {
    "lower": (_lower, 1, "lower(text): lower-case text (None for anything else)"),
    "upper": (_upper, 1, "upper(text): upper-case text (None for anything else)"),
    "startswith": (_startswith, 2, "startswith(text, prefix): true when text begins with prefix"),
    "endswith": (_endswith, 2, "endswith(text, suffix): true when text ends with suffix"),
    "len": (_len, 1, "len(value): length of a text or list, 0 for None"),
    "abs": (abs, 1, "abs(number)"),
    "min": (min, 2, "min(a, b)"),
    "max": (max, 2, "max(a, b)"),
    "extra": (extra_field, 2, 'extra(event, "name"): an input field outside the event contract, None when absent'),
    "in_list": (None, 2, 'in_list("name", value): true when value is in the shared list `name`'),  # type: ignore
    "listed": (None, 1, "listed(value): true when value is a live indicator of another lender (any type it "  # type: ignore
                        "normalizes to: card, device, ip, phone, national_id), by the event's time"),
}


@dataclass
class WhereStats:
    """How a predicate has fared at run time (read by the detector's stats)."""

    evaluations: int = 0
    failures: int = 0
    last_failure: str | None = None


class Where:
    """A compiled `where`: call it with the names of `names_for(...)` to get a bool."""

    __slots__ = ("text", "_tree", "_evaluator", "stats")

    def __init__(self, text: str, tree: ast.expr, functions: dict[str, Callable[..., Any]]) -> None:
        self.text = text
        self._tree = tree
        self._evaluator = EvalWithCompoundTypes(functions=dict(functions), names={})
        self.stats = WhereStats()

    def __call__(self, names: Mapping[str, Any]) -> bool:
        self.stats.evaluations += 1
        evaluator = self._evaluator
        evaluator.names = names
        try:
            return bool(evaluator.eval(self.text, previously_parsed=self._tree))
        except (InvalidExpression, ArithmeticError, TypeError, ValueError, AttributeError, KeyError) as exc:
            # A missing root (None.amount) or data the expression cannot compare: not a match, counted.
            self.stats.failures += 1
            self.stats.last_failure = f"{type(exc).__name__}: {exc}"
            return False

    @property
    def canonical(self) -> str:
        """Whitespace-, comment- and parenthesis-free form: what a rule version hashes."""
        return canonical(self._tree)

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


def canonical(tree: ast.expr) -> str:
    """Whitespace-, comment- and parenthesis-free form of an expression: what a rule version hashes."""
    return ast.dump(tree, annotate_fields=False)


def compile_where(text: Any, lists: Mapping[str, frozenset[str]], *,
                  schema: WhereSchema = ANY_RULE) -> tuple[Where, list[str]]:
    """Parse, check and compile. Returns the predicate and warnings; raises ExprError for anything wrong.

    `schema` says what the rule can read (the loader passes its kind's); by default any root may hold an event."""
    if not isinstance(text, str):
        raise ExprError(f"expected an expression as text, like 'transfer.channel == \"withdrawal\"', got {text!r}")
    source = text.strip()
    if not source:
        raise ExprError("the expression is empty; leave `where` out to match every event")
    if len(source) > MAX_LENGTH:
        raise ExprError(f"the expression is {len(source)} characters long; at most {MAX_LENGTH} allowed "
                        f"(split the logic over several rules)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        caret = f" at column {exc.offset}" if exc.offset else ""
        raise ExprError(f"syntax error{caret}: {exc.msg} in {source!r}") from None
    except (ValueError, RecursionError, MemoryError) as exc:     # null bytes, absurd nesting
        raise ExprError(f"cannot parse {source[:80]!r}: {exc}") from None
    tree = module.body
    depth = _nesting(tree)
    if depth > MAX_NESTING:
        raise ExprError(f"the expression is nested {depth} levels deep; at most {MAX_NESTING} allowed "
                        f"(split the logic over several rules)")
    notes: list[str] = []
    used_lists: dict[str, frozenset[str]] = {}
    _check(tree, source, lists, ROOTS, used_lists)
    try:
        notes += wheretypes.check(tree, schema)
    except wheretypes.Refused as exc:
        raise ExprError(str(exc)) from None
    tree = _decimal_literals(tree)
    functions = {name: impl for name, (impl, _, _) in FUNCTIONS.items() if impl is not None}
    resolved = {name: frozenset(items) for name, items in used_lists.items()}

    def in_list(name: str, value: Any) -> bool:
        return value is not None and str(value) in resolved[name]

    functions["in_list"] = in_list
    where = Where(source, tree, functions)
    evaluator = where._evaluator

    def listed(value: Any) -> bool:
        lookup = evaluator.names.get(LISTED)        # handed in by the detector with the event's time
        return lookup is not None and value is not None and bool(lookup(value))

    evaluator.functions["listed"] = listed
    return where, notes


def _check(tree: ast.AST, source: str, lists: Mapping[str, frozenset[str]], roots: tuple[str, ...],
           used_lists: dict[str, frozenset[str]]) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ExprError(f"{_describe(node)} is not allowed in a where expression ({source!r}); use "
                            f"comparisons, and/or/not, arithmetic, literals, `in [...]` and the functions "
                            f"{', '.join(FUNCTIONS)}")
        if isinstance(node, ast.Call):
            _check_call(node, source, lists, used_lists)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node, source, roots)
        elif isinstance(node, ast.Name) and not _is_call_target(node, tree):
            if node.id in ("True", "False", "None"):
                continue
            if node.id not in roots:
                hint = _did_you_mean(node.id, roots)
                raise ExprError(f"unknown name {node.id!r}{hint}; an expression reads "
                                f"{', '.join(roots)} (fields as in `transfer.channel`) and calls "
                                f"{', '.join(FUNCTIONS)}")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, int, float, bool, type(None))):
            raise ExprError(f"literal {node.value!r} is not allowed in {source!r}")


def _check_call(node: ast.Call, source: str, lists: Mapping[str, frozenset[str]],
                used_lists: dict[str, frozenset[str]]) -> None:
    if not isinstance(node.func, ast.Name):
        raise ExprError(f"only the functions {', '.join(FUNCTIONS)} can be called, not methods "
                        f"({ast.unparse(node.func)} in {source!r})")
    name = node.func.id
    if name not in FUNCTIONS:
        raise ExprError(f"unknown function {name!r}{_did_you_mean(name, tuple(FUNCTIONS))}; "
                        f"available: {', '.join(FUNCTIONS)}")
    if node.keywords:
        raise ExprError(f"{name}() takes no keyword arguments")
    arity = FUNCTIONS[name][1]
    if len(node.args) != arity:
        raise ExprError(f"{name}() takes {arity} argument{'s' if arity != 1 else ''}, got {len(node.args)} "
                        f"in {source!r}")
    if name == "in_list":
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            raise ExprError(f'in_list() needs the list name as quoted text first, like in_list("cash_mcc", '
                            f"transfer.merchant_category); got {ast.unparse(first)}")
        if first.value not in lists:
            hint = _did_you_mean(first.value, tuple(lists))
            raise ExprError(f"unknown list {first.value!r}{hint}; define it under `lists:`")
        used_lists[first.value] = lists[first.value]


def _check_attribute(node: ast.Attribute, source: str, roots: tuple[str, ...]) -> None:
    if node.attr.startswith("_"):
        raise ExprError(f"field {node.attr!r} is not readable (names starting with _ are private)")
    if isinstance(node.value, ast.Name) and node.value.id not in roots:
        raise ExprError(f"unknown name {node.value.id!r}{_did_you_mean(node.value.id, roots)}; an expression "
                        f"reads {', '.join(roots)} (fields as in `transfer.channel`)")
    if not isinstance(node.value, ast.Name):
        raise ExprError(f"fields are read one level deep on {', '.join(roots)}, like transfer.channel; "
                        f"got {ast.unparse(node)} in {source!r}")


def _nesting(tree: ast.AST) -> int:
    """Depth of the syntax tree, walked without recursion (the point is to refuse what recursion cannot handle)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _is_call_target(name: ast.Name, tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Call) and node.func is name for node in ast.walk(tree))


def _decimal_literals(tree: ast.expr) -> ast.expr:
    """Float literals become Decimal, so `transfer.amount > 0.9 * disbursement.amount` is exact money
    arithmetic (amounts are Decimal) instead of a TypeError."""

    class ToDecimal(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            if isinstance(node.value, float):
                return ast.copy_location(ast.Constant(value=Decimal(repr(node.value))), node)
            return node

    return ToDecimal().visit(tree)


def _describe(node: ast.AST) -> str:
    names = {ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator",
             ast.DictComp: "a comprehension", ast.SetComp: "a comprehension", ast.Dict: "a dict literal",
             ast.Subscript: "indexing ([...])", ast.NamedExpr: "assignment (:=)", ast.JoinedStr: "an f-string",
             ast.Await: "await", ast.Starred: "unpacking (*)", ast.Pow: "the power operator **"}
    return names.get(type(node), f"`{type(node).__name__}`")
