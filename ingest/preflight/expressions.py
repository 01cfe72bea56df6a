"""Entra ID attribute-mapping expressions: a parser and an evaluator for preflight (issue 26).

Semantics follow Microsoft's "Reference for writing expressions for attribute mappings in Microsoft Entra ID"
(https://learn.microsoft.com/en-us/entra/identity/app-provisioning/functions-for-customizing-application-data,
source: MicrosoftDocs/entra-docs docs/identity/app-provisioning/functions-for-customizing-application-data.md).
Syntax: ``FunctionName(arg, ...)`` nested freely; arguments are attributes ``[name]``, string constants in double
quotes (a ``"`` or ``\\`` inside is escaped with ``\\``), numbers, bare words (``vbBinaryCompare``) or empty (the
skipped arguments of ``Replace([x], "a", , , "b", , )``); ``IIF`` conditions compare with ``=``, ``<>``, ``>``,
``>=``, ``<``, ``<=``.

A value is a ``str``, a ``list`` of ``str`` (multi-valued), a ``bool`` or ``None`` (a null: a missing attribute), or
an :class:`Unknown` that says why it cannot be evaluated. Unknown is never guessed into a value: an unsupported
function, a null where the reference does not say what happens, or an ``Unknown`` argument all give ``Unknown``.

Null handling, per function (the reference's words where it has them; otherwise Unknown or None as noted):
- ``ToLower``/``ToUpper``/``NormalizeDiacritics``/``StripSpaces``/``Item``/``Mid`` of a null source give null (nothing
  to flow); ``Left`` of a null gives "" (documented).
- ``Append(null, suffix)``: Unknown (undocumented: Entra may flow the suffix alone).
- ``Join``: null and empty sources are left out (the reference's ``Join(", ", "", [surname], [givenName])`` gives
  "Doe, John"); a multi-valued source contributes every value.
- ``Coalesce``: the first argument that is not null; null when all are.
- ``Switch``: a null source compares as "" (the reference: "use a literal empty string as one of the key values");
  case-sensitive; no match gives ``defaultValue`` (null when it is empty).
- ``IIF``: "If the source attribute used within the IIF function is empty or null, the condition check fails": such
  a condition is Unknown (the reference does not say which branch a failed check takes).
- ``Replace``: the five documented forms; a null source gives null, except with ``replacementAttributeName`` (the
  documented fallback) and with ``template`` (Unknown). .NET named groups ``(?<n>...)`` and ``${n}`` are translated.
- ``SingleAppRoleAssignment``: the single role's name (its ``value`` or ``displayName`` when the assignment carries
  them, else its ``appRoleId``); none: null; several: Unknown ("isn't supported ... multiple app role assignments").
- ``IsNull``/``IsNullOrEmpty``/``IsPresent``/``Not``/``IgnoreFlowIfNullOrEmpty``: as documented.
``Trim`` is not an Entra provisioning function (it is Entra Connect sync's) and is Unknown like any other name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unknown:
    """A value that cannot be evaluated; ``reason`` says why (the function name, the null, the parse error)."""

    reason: str

    def __bool__(self) -> bool:  # an Unknown is never mistaken for a true condition
        return False


class ExpressionSyntaxError(ValueError):
    pass


# ----------------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Attr:
    name: str


@dataclass(frozen=True)
class Const:
    value: str


@dataclass(frozen=True)
class Missing:
    """An argument left empty: ``Replace([x], "a", , , "b", , )``."""


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Compare:
    op: str
    left: object
    right: object


Node = Attr | Const | Missing | Call | Compare
_OPERATORS = ("<>", ">=", "<=", "=", ">", "<")


class _Parser:
    """Recursive descent over the text: one expression, then the end."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, what: str) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(f"{what} at position {self.pos} of {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        node = self.argument()
        if isinstance(node, Missing):
            raise self.error("empty expression")
        if self.peek():
            raise self.error(f"unexpected {self.text[self.pos]!r}")
        return node

    def argument(self) -> Node:
        """An argument: a value, optionally compared with another (IIF's condition); empty is Missing."""
        if self.peek() in (",", ")", ""):
            return Missing()
        left = self.value()
        self.skip()
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return Compare(op, left, self.value())
        return left

    def value(self) -> Node:
        ch = self.peek()
        if ch == "[":
            end = self.text.find("]", self.pos)
            if end < 0:
                raise self.error("unclosed [")
            name = self.text[self.pos + 1:end].strip()
            self.pos = end + 1
            return Attr(name)
        if ch == '"':
            return Const(self.string())
        m = re.compile(r"-?\d+(?:\.\d+)?|&H[0-9A-Fa-f]+|[A-Za-z_][A-Za-z0-9_.]*").match(self.text, self.pos)
        if not m:
            raise self.error("expected an attribute, a string, a number or a function")
        word = m.group(0)
        self.pos = m.end()
        if self.peek() == "(":
            self.pos += 1
            args = [self.argument()]
            while self.peek() == ",":
                self.pos += 1
                args.append(self.argument())
            if self.peek() != ")":
                raise self.error(f"expected ')' to close {word}(")
            self.pos += 1
            if args == [Missing()]:
                args = []
            return Call(word, tuple(args))
        return Const(word)

    def string(self) -> str:
        out, i = [], self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
                continue
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        raise self.error("unclosed string")


def parse(expression: str) -> Node:
    """The syntax tree of ``expression``; :class:`ExpressionSyntaxError` when it is malformed."""
    return _Parser(expression).parse()


def attributes_read(expression: str) -> set[str]:
    """Every ``[attribute]`` the expression reads (empty for one that does not parse)."""
    try:
        node = parse(expression)
    except ExpressionSyntaxError:
        return set()
    found: set[str] = set()

    def walk(n: object) -> None:
        if isinstance(n, Attr):
            found.add(n.name)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)
        elif isinstance(n, Compare):
            walk(n.left)
            walk(n.right)
    walk(node)
    return found


# ----------------------------------------------------------------------------- evaluation
def evaluate(expression: str, user: Mapping[str, Any], *, app_role_assignments: Sequence[Mapping] = ()) -> Any:
    """The value ``expression`` gives for ``user`` (attribute name -> value; a missing name is null), or Unknown.

    ``app_role_assignments`` are the user's assignments to this app (``appRoleId``, and ``value``/``displayName``
    when known), read by ``[appRoleAssignments]`` and ``SingleAppRoleAssignment``."""
    try:
        node = parse(expression)
    except ExpressionSyntaxError as exc:
        return Unknown(f"cannot parse: {exc}")
    return _Evaluator(user, list(app_role_assignments)).eval(node)


class _Evaluator:
    def __init__(self, user: Mapping[str, Any], roles: list[Mapping]):
        self.user = user
        self.roles = roles

    def eval(self, node: Node) -> Any:
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Missing):
            return None
        if isinstance(node, Attr):
            return self.attribute(node.name)
        if isinstance(node, Compare):
            return Unknown(f"a comparison ({node.op}) is only evaluated as IIF's condition")
        fn = _FUNCTIONS.get(node.name)
        if fn is None:
            return Unknown(f"function {node.name} is not supported by preflight")
        return fn(self, node.args)

    def attribute(self, name: str) -> Any:
        if name == "appRoleAssignments":
            return list(self.roles)
        if name in self.user:
            value = self.user[name]
        else:
            lowered = {k.lower(): k for k in self.user}
            value = self.user[lowered[name.lower()]] if name.lower() in lowered else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    def args(self, nodes: tuple, count: int | None = None) -> list[Any]:
        values = [self.eval(n) for n in nodes]
        if count is not None:
            values += [None] * (count - len(values))
        return values


def _first_unknown(values: Sequence[Any]) -> Unknown | None:
    return next((v for v in values if isinstance(v, Unknown)), None)


def _text(value: Any) -> Any:
    """A single string from a value: lists of one item pass, booleans become "True"/"False"."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return value[0] if len(value) == 1 and isinstance(value[0], str) else Unknown("a multi-valued attribute "
                                                                                     "where a string is expected")
    return value


def _string_fn(op):
    def fn(ev: _Evaluator, nodes: tuple) -> Any:
        if not nodes:
            return Unknown("missing source argument")
        values = ev.args(nodes)
        unknown = _first_unknown(values)
        if unknown:
            return unknown
        source = _text(values[0])
        if isinstance(source, Unknown) or source is None:
            return source
        return op(source, values[1:])
    return fn


def _to_lower(source: str, rest: list) -> Any:
    culture = rest[0] if rest else None
    if culture and not str(culture).lower().startswith("en"):
        return Unknown(f"ToLower with culture {culture!r}")
    return source.lower()


def _to_upper(source: str, rest: list) -> Any:
    culture = rest[0] if rest else None
    if culture and not str(culture).lower().startswith("en"):
        return Unknown(f"ToUpper with culture {culture!r}")
    return source.upper()


# The reference's table maps these to letters that are not a base letter plus combining marks.
_DIACRITIC_SPECIAL = {"æ": "ae", "Æ": "AE", "ǣ": "ae", "Ǣ": "AE", "ø": "oe", "Ø": "OE", "œ": "oe", "Œ": "OE",
                      "ß": "ss", "ł": "l", "Ł": "L", "ı": "i"}


def _normalize_diacritics(source: str, rest: list) -> str:
    out = []
    for ch in source:
        if ch in _DIACRITIC_SPECIAL:
            out.append(_DIACRITIC_SPECIAL[ch])
            continue
        out.append("".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)))
    return unicodedata.normalize("NFC", "".join(out))


def _append(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 2)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    source, suffix = (_text(v) for v in values[:2])
    if source is None:
        return Unknown("Append of a null source (undocumented)")
    return f"{source}{suffix or ''}"


def _join(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    if not values:
        return Unknown("Join without a separator")
    separator = _text(values[0]) or ""
    parts: list[str] = []
    for v in values[1:]:
        for item in (v if isinstance(v, list) else [v]):
            item = _text(item)
            if isinstance(item, str) and item != "":
                parts.append(item)
    return separator.join(parts)


def _coalesce(ev: _Evaluator, nodes: tuple) -> Any:
    for node in nodes:
        value = ev.eval(node)
        if isinstance(value, Unknown):
            return value
        if value is not None:
            return value
    return None


def _item(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 2)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    source, index = values[:2]
    if source is None:
        return None
    try:
        n = int(str(index))
    except ValueError:
        return Unknown(f"Item index {index!r} is not a number")
    if n < 1:
        return Unknown("Item index 0 or below (the reference: index 0 shouldn't be used)")
    items = source if isinstance(source, list) else [source]
    return items[n - 1] if n <= len(items) else None


def _role_name(assignment: Mapping) -> str | None:
    for key in ("value", "displayName", "appRoleValue", "appRoleDisplayName", "appRoleId"):
        if assignment.get(key):
            return str(assignment[key])
    return None


def _single_app_role_assignment(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 1)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    roles = values[0]
    if roles is None or roles == []:
        return None
    if not isinstance(roles, list):
        return Unknown("SingleAppRoleAssignment of something other than [appRoleAssignments]")
    if len(roles) > 1:
        return Unknown("SingleAppRoleAssignment with several app role assignments (not supported by Entra)")
    return _role_name(roles[0]) if isinstance(roles[0], Mapping) else str(roles[0])


def _switch(ev: _Evaluator, nodes: tuple) -> Any:
    if len(nodes) < 2 or len(nodes) % 2:
        return Unknown("Switch needs a source, a default and key/value pairs (an even number of arguments)")
    source = _text(ev.eval(nodes[0]))
    if isinstance(source, Unknown):
        return source
    key_of = "" if source is None else source
    for k, v in zip(nodes[2::2], nodes[3::2]):
        key = _text(ev.eval(k))
        if isinstance(key, Unknown):
            return key
        if (key or "") == key_of:
            return ev.eval(v)
    return ev.eval(nodes[1])


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _condition(ev: _Evaluator, node: Node) -> Any:
    """True/False, or Unknown when a side is null/empty ("the condition check fails") or not comparable."""
    if isinstance(node, Compare):
        left, right = _text(ev.eval(node.left)), _text(ev.eval(node.right))
        unknown = _first_unknown([left, right])
        if unknown:
            return unknown
        for side, value in ((node.left, left), (node.right, right)):
            if isinstance(side, Attr) and value in (None, ""):
                return Unknown(f"IIF condition on the null or empty attribute [{side.name}]")
        if left is None or right is None:
            return Unknown("IIF condition with a null operand")
        if node.op in ("=", "<>"):
            return (left == right) == (node.op == "=")
        a, b = _number(left), _number(right)
        if a is None or b is None:
            return Unknown(f"IIF comparison {node.op} of values that are not numbers")
        return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[node.op]
    value = _text(ev.eval(node))
    if isinstance(value, (Unknown, bool)):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return Unknown(f"IIF condition {value!r} is neither true nor false")


def _iif(ev: _Evaluator, nodes: tuple) -> Any:
    if len(nodes) != 3:
        return Unknown("IIF needs three arguments")
    cond = _condition(ev, nodes[0])
    if isinstance(cond, Unknown):
        return cond
    return ev.eval(nodes[1] if cond else nodes[2])


def net_regex(pattern: str) -> re.Pattern:
    """A .NET regular expression in Python's dialect: ``(?<name>`` named groups."""
    return re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", pattern))


def _net_replacement(text: str) -> str:
    """A .NET replacement string (``${name}``, ``$1``, ``$$``) as Python's re.sub template."""
    out = text.replace("\\", "\\\\")
    out = re.sub(r"\$\{(\w+)\}", r"\\g<\1>", out)
    out = re.sub(r"\$(\d+)", r"\\g<\1>", out)
    return out.replace("$$", "$")


def _replace(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 7)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    source, old, pattern, group, replacement, replacement_attr, template = (_text(v) for v in values[:7])
    unknown = _first_unknown([source, old, pattern, group, replacement, replacement_attr, template])
    if unknown:
        return unknown
    try:
        if pattern is not None and group is not None and replacement_attr is not None and replacement is None:
            if source not in (None, ""):
                return source
            m = net_regex(pattern).search(replacement_attr or "")
            return m.group(group) if m else None
        if template is not None and old is not None:
            if source is None:
                return Unknown("Replace with a template and a null source (undocumented)")
            return template.replace(old, source)
        if source is None:
            return None
        if pattern is not None and group is not None and replacement is not None:
            rx = net_regex(pattern)

            def swap(m: re.Match) -> str:
                whole, start = m.group(0), m.start()
                if m.group(group) is None:
                    return whole
                a, b = m.start(group) - start, m.end(group) - start
                return whole[:a] + replacement + whole[b:]
            return rx.sub(swap, source)
        if pattern is not None and replacement is not None:
            return net_regex(pattern).sub(_net_replacement(replacement), source)
        if old is not None and replacement is not None:
            return source.replace(old, replacement) if old else source
    except (re.error, IndexError) as exc:
        return Unknown(f"Replace: regular expression not understood ({exc})")
    return Unknown("Replace with a combination of parameters the reference does not describe")


def _mid(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 3)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    source, start, length = _text(values[0]), _number(values[1]), _number(values[2])
    if source is None:
        return None
    if start is None or length is None or start < 1 or length < 0:
        return Unknown("Mid with a start or length that is not a positive number")
    s = int(start) - 1
    return source[s:s + int(length)]


def _left(ev: _Evaluator, nodes: tuple) -> Any:
    values = ev.args(nodes, 2)
    unknown = _first_unknown(values)
    if unknown:
        return unknown
    source, n = _text(values[0]), _number(values[1])
    if source is None:
        return ""  # documented: "If string is null, return empty string."
    if n is None:
        return Unknown("Left with a count that is not a number")
    return source if n < 0 else source[:int(n)]


def _is_null(ev: _Evaluator, nodes: tuple) -> Any:
    value = ev.eval(nodes[0]) if nodes else None
    return value if isinstance(value, Unknown) else value is None


def _is_null_or_empty(ev: _Evaluator, nodes: tuple) -> Any:
    value = ev.eval(nodes[0]) if nodes else None
    return value if isinstance(value, Unknown) else value in (None, "", [])


def _is_present(ev: _Evaluator, nodes: tuple) -> Any:
    value = _is_null_or_empty(ev, nodes)
    return value if isinstance(value, Unknown) else not value


def _not(ev: _Evaluator, nodes: tuple) -> Any:
    value = _text(ev.eval(nodes[0])) if nodes else None
    if isinstance(value, Unknown):
        return value
    return "False" if str(value).lower() == "true" else "True"


def _ignore_flow_if_null_or_empty(ev: _Evaluator, nodes: tuple) -> Any:
    value = ev.eval(nodes[0]) if nodes else None
    return None if value in ("", []) else value


_FUNCTIONS = {
    "Append": _append,
    "Coalesce": _coalesce,
    "IgnoreFlowIfNullOrEmpty": _ignore_flow_if_null_or_empty,
    "IIF": _iif,
    "IsNull": _is_null,
    "IsNullOrEmpty": _is_null_or_empty,
    "IsPresent": _is_present,
    "Item": _item,
    "Join": _join,
    "Left": _left,
    "Mid": _mid,
    "NormalizeDiacritics": _string_fn(_normalize_diacritics),
    "Not": _not,
    "Replace": _replace,
    "SingleAppRoleAssignment": _single_app_role_assignment,
    "StripSpaces": _string_fn(lambda s, rest: s.replace(" ", "")),
    "Switch": _switch,
    "ToLower": _string_fn(_to_lower),
    "ToUpper": _string_fn(_to_upper),
}
SUPPORTED_FUNCTIONS = frozenset(_FUNCTIONS)
