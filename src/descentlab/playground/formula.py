"""A user's surface ``f(x, y)``, typed as text, parsed safely into torch operations.

The text is parsed by Python's own parser (:func:`ast.parse`, which only builds
a tree and runs nothing), then every node is checked against a whitelist:
numbers, the names ``x``, ``y``, ``pi`` and ``e``, the operators
``+ - * / **`` and ``^`` (the power, as people write it), and calls of a few
elementwise functions by name. Anything else (attributes, subscripts,
keywords, strings, comparisons, lambdas, unknown names) is refused with a
message that names it. The checked tree is turned into nested Python closures
over torch functions, so nothing the user typed is ever given to ``eval`` or
``exec``, and the same function evaluates a contour grid and, with autograd,
an optimizer's gradient.

>>> f = parse_formula("(1 - x)^2 + 100*(y - x^2)^2")
>>> float(f(torch.tensor(1.0), torch.tensor(1.0)))
0.0
>>> parse_formula("__import__('os')")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
descentlab.playground.formula.FormulaError: formula: unknown function '__import__'; use one of abs, cos, ...
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

import torch

#: Longer text is refused before parsing: a surface fits in a line, and a cap
#: bounds the parser's work and the tree's depth.
MAX_LENGTH = 200

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "abs": torch.abs,
    "cos": torch.cos,
    "cosh": torch.cosh,
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "sinh": torch.sinh,
    "sqrt": torch.sqrt,
    "tan": torch.tan,
    "tanh": torch.tanh,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
VARIABLES = ("x", "y")

_BINARY: dict[type, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}

Surface = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_Node = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


class FormulaError(ValueError):
    """A formula that is not a function of x and y built from the allowed pieces."""

    def __init__(self, reason: str, key: str = "", **params: object) -> None:
        # ``key`` and ``params`` name the reason in the page's message catalogue,
        # so that the page can show it in the reader's language.
        super().__init__(f"formula: {reason}")
        self.key = key
        self.params = params


def parse_formula(text: object) -> Surface:
    """The function ``f(x, y)`` that ``text`` describes, elementwise on tensors; FormulaError if refused."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("give a formula in x and y, e.g. x^2 + 10*y^2", "error.formula_empty")
    if len(text) > MAX_LENGTH:
        raise FormulaError(
            f"at most {MAX_LENGTH} characters; received {len(text)}",
            "error.formula_long",
            limit=MAX_LENGTH,
            length=len(text),
        )
    # Python reads ^ as exclusive or, with a lower precedence than + and *, so
    # "y - x^2" would be "(y - x) ^ 2": it becomes ** before parsing instead.
    source = text.strip().replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        detail = getattr(err, "msg", None) or type(err).__name__
        raise FormulaError(f"cannot read {text.strip()!r}: {detail}", "error.formula_syntax") from None
    try:
        node = _compile(tree.body)
    except RecursionError:
        raise FormulaError("the formula is nested too deeply", "error.formula_syntax") from None

    def surface(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = node(x, y)
        # A constant formula still gives one value per point.
        return value if isinstance(value, torch.Tensor) else torch.full_like(x, value)

    return surface


def _compile(node: ast.AST) -> _Node:
    """The closure computing ``node``; refuses every node kind outside the whitelist."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(
                f"{node.value!r} is not a number", "error.formula_piece", piece=repr(node.value)
            )
        value = float(node.value)  # never a Python int: 9**9**9 must not become a huge integer
        if not math.isfinite(value):
            raise FormulaError(f"{node.value!r} is not a finite number", "error.formula_piece", piece="inf")
        return lambda x, y: value
    if isinstance(node, ast.Name):
        if node.id == "x":
            return lambda x, y: x
        if node.id == "y":
            return lambda x, y: y
        if node.id in CONSTANTS:
            constant = CONSTANTS[node.id]
            return lambda x, y: constant
        raise FormulaError(
            f"unknown name {node.id!r}; use x, y, pi and e", "error.formula_name", name=node.id
        )
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda x, y: _apply(op, left(x, y), right(x, y), x)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _compile(node.operand)
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return lambda x, y: _apply(torch.mul, sign, operand(x, y), x)
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            shown = name if name is not None else ast.unparse(node.func)
            raise FormulaError(
                f"unknown function {shown!r}; use one of {', '.join(FUNCTIONS)}",
                "error.formula_function",
                name=shown,
            )
        if node.keywords or len(node.args) != 1:
            raise FormulaError(f"{name}() takes one argument", "error.formula_arguments", name=name)
        fn, argument = FUNCTIONS[name], _compile(node.args[0])
        return lambda x, y: fn(_tensor(argument(x, y), x))
    piece = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    raise FormulaError(f"{piece!r} is not allowed in a formula", "error.formula_piece", piece=piece)


def _tensor(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=like.dtype)


def _apply(
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    a: torch.Tensor | float,
    b: torch.Tensor | float,
    like: torch.Tensor,
) -> torch.Tensor | float:
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        # Two constants: computed in torch too, so 1/0 is inf (a diverged surface), not an exception.
        return float(op(torch.tensor(a, dtype=like.dtype), torch.tensor(b, dtype=like.dtype)))
    return op(_tensor(a, like), _tensor(b, like))
