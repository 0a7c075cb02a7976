"""A typed formula becomes torch operations through a whitelist; anything else is refused, nothing is evaluated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab.playground.formula import MAX_LENGTH, FormulaError, parse_formula
from descentlab.problems import SURFACES

# The registry's own surfaces, typed as a reader would type them.
TYPED = {
    "quadratic2d": "0.5*x^2 + 25*y^2",
    "rosenbrock": "(1 - x)^2 + 100*(y - x^2)^2",
    "beale": "(1.5 - x + x*y)^2 + (2.25 - x + x*y^2)^2 + (2.625 - x + x*y^3)^2",
    "saddle": "x^2 - y^2 + 0.5*y^4",
    "trap": "(x^2 - 1)^2 + 0.5*x + y^2",
}


@pytest.mark.parametrize("name", list(SURFACES))
def test_typed_surfaces_give_the_registry_s_values_and_gradients(name):
    f = parse_formula(TYPED[name])
    rng = np.random.default_rng(0)
    xy = torch.tensor(rng.uniform(-2, 2, size=(50, 2)), requires_grad=True)
    mine = f(xy[:, 0], xy[:, 1])
    theirs = SURFACES[name].f(xy[:, 0], xy[:, 1])
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    (g1,) = torch.autograd.grad(mine.sum(), xy)
    (g2,) = torch.autograd.grad(theirs.sum(), xy)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "text, value",
    [
        ("sin(pi/2) + exp(0) + sqrt(4) + abs(-x) + log(e)", 6.0),  # at x = 1
        ("-x^2", -1.0),  # the power binds tighter than the sign, as in mathematics
        ("2^-1 * y", 0.5),  # at y = 1
        ("7", 7.0),
        ("1/0", float("inf")),  # a surface that is infinite, not an exception
    ],
)
def test_the_allowed_pieces(text, value):
    out = parse_formula(text)(torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    assert out.shape == (3,) and torch.all(out == value)


HOSTILE = [
    "__import__('os').system('touch /tmp/pwned')",
    "x.__class__.__bases__",
    "().__class__",
    "open('/etc/passwd')",
    "[c for c in ().__class__.__subclasses__()]",
    "lambda: 1",
    "exec('1')",
    "eval('1')",
    "globals()",
    "x if y else 1",
    "x < y",
    "x[0]",
    "'text'",
    "z + 1",
    "sin(x, y)",
    "sin(x=1)",
    "x @ y",
    "x; y",
    "(",
    "2x",
    "",
    "   ",
    "1e999",
    "True",
    "(" * 150 + "x" + ")" * 150,
    "x" * (MAX_LENGTH + 1),
    None,
    12,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_anything_else_is_refused_with_a_message(text):
    with pytest.raises(FormulaError) as caught:
        parse_formula(text)
    message = str(caught.value)
    assert message.startswith("formula: ") and "\n" not in message
    assert caught.value.key.startswith("error.formula_")
