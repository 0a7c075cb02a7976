"""Spec files: a sweep declared in TOML (or JSON), read into a checked :class:`~descentlab.lab.Space`.

What ``descentlab sweep SPEC`` reads::

    name = "lr-tuning"
    problem = ["quadratic2d", "rosenbrock"]    # a list is a Choice
    regime = "full-batch"
    budget = { steps = 300 }
    seed = [0, 1, 2]

    [optimizers.sgd]
    lr = { low = 1e-4, high = 0.1, n = 7, log = true }   # LogGrid; without n: LogUniform
    momentum = [0.0, 0.9]

    [optimizers.adam]
    lr = { low = 1e-4, high = 0.1, n = 7, log = true }

    [random]        # optional: random search, 20 settings per problem and optimizer
    samples = 20
    seed = 0

Every mistake is one ValueError naming the file, the key and the problem,
raised before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _serde
from .._registry import lookup
from ..train import Budget, Every, RunConfig, Schedule
from .space import SETTINGS, Choice, Grid, LogGrid, LogUniform, Space, SpaceError, Uniform

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Spec:
    """A sweep as a spec file declares it: a name, a space, and grid or random search.

    ``samples=None`` expands the grid; otherwise ``samples`` random settings
    per problem and optimizer are drawn with ``seed``.
    """

    name: str | None
    space: Space
    samples: int | None = None
    seed: int = 0

    def configs(self) -> list[RunConfig]:
        """The sweep's run configurations, each checked."""
        if self.samples is None:
            return self.space.expand()
        return self.space.sample(self.samples, self.seed)


SPEC_KEYS: tuple[str, ...] = (
    "name",
    "problem",
    "optimizers",
    "seed",
    "regime",
    "batch_size",
    "budget",
    "problem_options",
    "random",
    *SETTINGS,
)
_RANGE_KEYS = ("low", "high", "n", "log")


def load_spec(path: str | Path) -> Spec:
    """Read a spec file: JSON if its name ends in ``.json``, TOML otherwise.

    A file that cannot be read raises OSError; malformed content ValueError
    naming the file, the key and the problem. A spec without ``name`` is
    named after the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise OSError(f"cannot read spec {str(path)!r}: {err.strerror or type(err).__name__}") from None
    try:
        text = raw.decode("utf-8")
        data = (
            json.loads(text, object_pairs_hook=_unique_keys)
            if path.suffix.lower() == ".json"
            else tomllib.loads(text)
        )
    except (ValueError, tomllib.TOMLDecodeError) as err:  # UnicodeDecodeError, JSONDecodeError, a key twice
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ValueError(f"{path.name}: not valid {kind}: {err}") from None
    except RecursionError:  # both parsers recurse per level: '[' * 100000 exhausts the stack
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ValueError(f"{path.name}: not valid {kind}: nested too deeply for a spec") from None
    spec = parse_spec(data, source=path.name)
    return spec if spec.name is not None else dataclasses.replace(spec, name=path.stem)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it names a key twice (json keeps the last silently; TOML refuses)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """The :class:`Spec` that parsed TOML or JSON ``data`` declares (see the module docstring).

    Lists are choices; a table with ``low`` and ``high`` is a range (``n``:
    a grid, else continuous; ``log = true``: a log scale); ``{values =
    [...]}`` is a choice too. A list-valued hyperparameter is a list of
    lists: ``betas = [[0.9, 0.999]]``.

    >>> spec = parse_spec({"problem": "saddle", "optimizers": {"sgd": {"lr": [0.01, 0.1]}}})
    >>> [c.hyperparameters["lr"] for c in spec.configs()]
    [0.01, 0.1]
    >>> parse_spec({"problem": "saddle", "optimizers": {"sgd": {"lr": {"low": 0, "high": 1, "log": True}}}})
    Traceback (most recent call last):
    ...
    ValueError: spec: optimizers.sgd.lr: LogUniform: low must be > 0 for a log scale; received low=0
    """

    def fail(where: str, reason: str) -> ValueError:
        return ValueError(f"{source}: {where}: {reason}")

    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a spec is a table of keys; received {type(data).__name__}")
    try:
        _only("key", data, SPEC_KEYS)
    except LookupError as err:
        raise ValueError(f"{source}: {err}") from None
    for key in ("problem", "optimizers"):
        if key not in data:
            raise fail(key, "missing (every spec names its problems and optimizers)")

    def dimension(where: str, value: Any) -> Any:
        try:
            return _dimension(value)
        except ValueError as err:
            raise fail(where, str(err)) from None

    def table(where: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise fail(where, f"must be a table; received {value!r}")
        return value

    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise fail("name", f"must be a non-empty string; received {name!r}")
    optimizers = {}
    for optimizer, hyper in table("optimizers", data["optimizers"]).items():
        where = f"optimizers.{optimizer}"
        optimizers[optimizer] = {k: dimension(f"{where}.{k}", v) for k, v in table(where, hyper).items()}
    options = {
        k: dimension(f"problem_options.{k}", v)
        for k, v in table("problem_options", data.get("problem_options", {})).items()
    }
    budget = data.get("budget")
    if budget is not None:
        budgets = [budget] if isinstance(budget, Mapping) else budget
        if not isinstance(budgets, list) or not budgets:
            raise fail(
                "budget", f"must be a table such as {{ epochs = 3 }} or a list of them; received {budget!r}"
            )
        parsed = [_budget(fail, b) for b in budgets]
        budget = parsed[0] if isinstance(data["budget"], Mapping) else Choice(parsed)
    settings = {k: _setting(fail, k, data[k]) for k in SETTINGS if k in data}
    samples, seed = None, 0
    if "random" in data:
        random = table("random", data["random"])
        try:
            _only("key of [random]", random, ("samples", "seed"))
        except LookupError as err:
            raise fail("random", str(err)) from None
        if "samples" not in random:
            raise fail("random", "give samples, the number of random settings per problem and optimizer")
        samples, seed = random["samples"], random.get("seed", 0)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise fail("random.samples", f"must be a positive integer; received samples={samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise fail("random.seed", f"must be an integer >= 0; received seed={seed!r}")
    try:
        space = Space(
            problem=dimension("problem", data["problem"]),
            optimizers=optimizers,
            seed=dimension("seed", data.get("seed", 0)),
            regime=dimension("regime", data.get("regime")),
            batch_size=dimension("batch_size", data.get("batch_size")),
            budget=budget,
            problem_options=options,
            settings=settings,
        )
    except SpaceError as err:
        raise fail(err.where, err.reason) from None
    spec = Spec(name, space, samples, seed)
    # Expanding checks every run; done here so that a spec that loads is a spec that runs.
    try:
        spec.configs()
    except SpaceError as err:
        raise fail(err.where, err.reason) from None
    return spec


def _only(kind: str, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Raise the registry's error, with the closest names, for a key of ``table`` not in ``allowed``."""
    for key in table:
        lookup(kind, key, dict.fromkeys(allowed))


def _dimension(value: Any) -> Any:
    """A value of a spec: a list is a Choice, a table a range or ``{values = [...]}``, else itself."""
    if isinstance(value, list):
        return Choice(value)
    if not isinstance(value, Mapping):
        return value
    keys = set(value)
    if keys == {"values"}:
        return Choice(value["values"])
    _only("key of a range", value, (*_RANGE_KEYS, "values"))
    if "values" in value:  # both kinds of table at once: one of them would be dropped without a word
        raise ValueError(
            f"give either values = [...] or a range (low, high, n, log), not both; received {dict(value)!r}"
        )
    if not {"low", "high"} <= keys:
        raise ValueError(
            "a range needs low and high (and n for a grid, log = true for a log scale); "
            f"received {dict(value)!r}"
        )
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false; received log={log!r}")
    if "n" in value:
        return (LogGrid if log else Grid)(value["low"], value["high"], value["n"])
    return (LogUniform if log else Uniform)(value["low"], value["high"])


def _budget(fail: Any, data: Any) -> Budget:
    if not isinstance(data, Mapping):
        raise fail("budget", f"must be a table such as {{ epochs = 3 }}; received {data!r}")
    try:
        _only("budget limit", data, ("steps", "epochs", "samples", "seconds"))
    except LookupError as err:
        raise fail("budget", str(err)) from None
    try:
        return Budget(**data)
    except ValueError as err:
        raise fail("budget", str(err)) from None


def _setting(fail: Any, key: str, value: Any) -> Any:
    try:
        if key == "eval_every":
            return Every.parse(str(value)) if isinstance(value, str | int) else _typed(Every, value)
        if key == "schedule":
            return _typed(Schedule, value)
        if key == "observers":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"must be a list of observer names; received {value!r}")
            return tuple(value)
        expected = {"chunk_size": int, "drop_last": bool, "skip_nonfinite": bool}[key]
        if type(value) is not expected:
            wanted = "an integer" if expected is int else "true or false"
            raise ValueError(f"must be {wanted}; received {value!r}")
        return value
    except ValueError as err:
        raise fail(key, str(err)) from None


def _typed(cls: type, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table; received {value!r}")
    return _serde.from_data(cls, dict(value))
