"""The conversion templates of shaped HA entities (`docs/home-assistant.md`, "Shaping
datastream entities"), evaluated exactly without Jinja: the bridge's templates are one
fixed shape around plain arithmetic, so a regex takes the arithmetic out and `arith`
evaluates it in fractions (every constant read from its decimal text)."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

__all__ = ["arith", "command_sent", "rendered_state", "state_shown"]

_OPS: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def arith(expr: str, x: Fraction) -> Fraction:
    """`expr` (numbers, x, + - * / and parentheses) evaluated in exact fractions; every
    constant is read from its decimal text, so 1.8 is 9/5, not the float."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            text = ast.get_source_segment(expr, node)
            assert text is not None
            return Fraction(text)
        if isinstance(node, ast.Name) and node.id == "x":
            return x
        raise AssertionError(f"unexpected template syntax: {ast.dump(node)}")

    return ev(ast.parse(expr, mode="eval").body)


_VALUE_TPL = re.compile(
    r"^\{% if is_number\((?P<src>value|value_json\.value)\) %\}\{\{ "
    r"(?:\((?P<expr>.+)\) \| round\((?P<places>\d+)\)|'%\.7g' \| format\((?P<gexpr>.+)\))"
    r" \}\}\{% else %\}\{\{ (?P=src) \}\}\{% endif %\}$"
)
"""The two shapes of a conversion `value_template`: rounded to decimal places, or cut to
7 significant digits (`'%.7g' | format(…)`)."""
_COMMAND_INT = re.compile(r"^\{\{ \((?P<expr>.+)\) \| round \| int \}\}$")
_COMMAND = re.compile(r"^\{\{ (?P<expr>.+) \}\}$")


def state_shown(template: str, payload_value: Fraction, is_json: bool) -> Fraction:
    """What HA shows for a board value, by the sensor/number `value_template`: the exact
    arithmetic, rounded as the template says (half to even, as Python's `round` and `%g`,
    which HA's `round` and `format` filters call)."""
    m = _VALUE_TPL.match(template)
    assert m is not None, template
    assert m["src"] == ("value_json.value" if is_json else "value")
    expr = m["expr"] or m["gexpr"]
    exact = arith(expr.replace(f"({m['src']} | float)", "x"), payload_value)
    if m["places"] is not None:
        return round(exact, int(m["places"]))
    with localcontext() as ctx:
        ctx.prec = 7
        return Fraction(+(Decimal(exact.numerator) / Decimal(exact.denominator)))


def command_sent(template: str, ha_value: Fraction) -> Fraction:
    """What the number's `command_template` sends to the bridge for HA's value (an
    integer datastream: rounded to the nearest whole number, as Jinja's round | int)."""
    m = _COMMAND_INT.match(template)
    if m is not None:
        return Fraction(round(arith(m["expr"].replace("value", "x"), ha_value)))
    m = _COMMAND.match(template)
    assert m is not None, template
    return arith(m["expr"].replace("value", "x"), ha_value)


def rendered_state(template: str, payload: str) -> str:
    """The text HA renders from the plain-format payload `payload` by a `value_template`,
    in HA's own float arithmetic (Jinja computes with Python floats; HA's `round` filter
    is Python's `round`, an int for 0 places; `format` is `%`): the noise a float map
    leaves (`73.58000000000001`) would show here, unlike in `state_shown`. A payload that
    is not a number is passed through, as the template's `is_number` branch does."""
    m = _VALUE_TPL.match(template)
    assert m is not None and m["src"] == "value", template
    try:
        x = float(payload)
    except ValueError:
        return payload

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.BinOp) and type(node.op) in _FLOAT_OPS:
            return _FLOAT_OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id == "x":
            return x
        raise AssertionError(f"unexpected template syntax: {ast.dump(node)}")

    expr = (m["expr"] or m["gexpr"]).replace("(value | float)", "x")
    value = ev(ast.parse(expr, mode="eval").body)
    if m["places"] is None:
        return format(value, ".7g")  # what Jinja's `"%.7g" | format(value)` gives
    places = int(m["places"])
    return str(round(value) if places == 0 else round(value, places))


_FLOAT_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
