"""Plumbing shared by every descentlab optimizer; no update rule lives here.

A subclass declares its state and hyperparameters and names a pure per-tensor
update function; this base class does the rest the same way for all of them:

- checks parameter groups (types, leaves, dtypes, overlaps) and hyperparameters
  before anything is stored;
- creates per-parameter state lazily, including state that a loaded checkpoint
  or a changed option (``amsgrad``, ``momentum``) newly needs;
- counts steps per parameter, as torch.optim does, so a parameter that had no
  gradient in some steps keeps its own bias correction;
- checks a checkpoint completely before :meth:`load_state_dict` replaces
  anything.

The state-dict format is torch.optim's: the same keys, tensors per parameter,
``step`` as a 0-dim float tensor, so checkpoints move between the two.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections import OrderedDict
from collections.abc import Callable
from itertools import chain
from typing import Any, ClassVar

import torch

from . import _checks, _flat, _lean, conventions

#: The Args entries of every optimizer's docstring for the options :class:`Optimizer` adds,
#: indented for a class docstring; ``{lean_extra}`` is a sentence about one class's
#: ``lean_state`` (or nothing). Fill with :func:`common_args`.
_COMMON_ARGS = """
        skip_nonfinite: if a gradient holds a NaN or an infinity, skip the whole
            step, leaving every parameter and all state untouched, and count it
            in ``skipped_steps`` (default False: as in torch.optim, a non-finite
            gradient flows into the parameters).
        state_dtype: keep the state tensors (moments, accumulators) in this
            floating dtype, and do the rule's arithmetic in it, whatever the
            parameters' dtype: ``torch.float32`` for ``torch.bfloat16``
            parameters, whose 8-bit mantissa cannot hold Adam's second moment
            (default None: the parameter's dtype, as torch.optim).
        lean_state: keep the state of parameters with at least 4096 elements in
            ``"bfloat16"`` (2 bytes an element) or ``"8bit"`` (1 byte an element
            and a float32 scale per block of 256), computing in float32 and
            writing back with deterministic stochastic rounding; smaller and
            complex parameters keep full precision (``state_dtype``). Default
            None: full precision. See :mod:`descentlab.optim._lean` and
            ``docs/lean-state.md`` for the error bounds.{lean_extra}
        stochastic_rounding: round bfloat16 parameters stochastically after
            each step, with the rule computed on a float32 copy: updates smaller
            than half a bfloat16 step then move the parameter on average
            instead of being lost (default False; other dtypes are unaffected;
            both paths, the same numbers; needs a step count, so not for SGD
            without momentum)."""


def common_args(lean_extra: str = "") -> str:
    """The Args entries of the options every optimizer takes, for a class docstring."""
    return _COMMON_ARGS.format(lean_extra=lean_extra)


def is_set(x: float | torch.Tensor) -> bool:
    """True unless ``x`` is the number zero.

    Update functions branch on this instead of ``x != 0`` so that the branch
    never depends on tensor data: a hyperparameter passed as a tensor (as a
    compiled path passes the ones that schedulers change) always counts as set.
    """
    return isinstance(x, torch.Tensor) or x != 0


def _device_step(step: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The step counter for on-device arithmetic, in the parameter's precision or better.

    torch.optim computes capturable bias corrections such as ``1 - 0.999**t``
    in the counter's float32, which loses about 3e-5 of relative precision at
    t = 1; a float64 parameter gets float64 corrections here.
    """
    real = p.real.dtype if p.is_complex() else p.dtype
    return step.to(torch.promote_types(real, torch.float32))


def _all_finite(grads: list[torch.Tensor]) -> bool:
    """Whether every entry of every gradient is finite (one reduction per device and dtype)."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for g in grads:
        g = g.coalesce()._values() if g.is_sparse else g
        g = torch.view_as_real(g) if g.is_complex() else g
        if g.numel():
            # The largest magnitude is finite iff every entry is (a sum could overflow).
            by_device.setdefault(g.device, []).append(g.abs().amax().float())
    return all(bool(torch.isfinite(torch.stack(m)).all()) for m in by_device.values())


def _lean_kind(owner: str, at: str, group: dict[str, Any], p: torch.Tensor) -> str | None:
    """``p``'s lean form in ``group`` (:func:`._lean.kind`); ValueError where a DTensor cannot keep it.

    A DTensor's lean state is sharded as the parameter is, each rank rounding
    its own shard; 8-bit state also shards its block scales, which needs
    shards of whole blocks (:func:`._lean.dtensor_blocks`). Refused before
    anything is stored, rather than failing in the middle of a step.
    """
    kind = _lean.kind(group, p)
    problem = _lean.dtensor_blocks(p) if kind == "8bit" and _lean.is_dtensor(p) else None
    if problem is not None:
        raise ValueError(
            f"{owner}: {at} is a DTensor (FSDP2's fully_shard, tensor parallelism) of "
            f"{p.numel()} elements, so lean_state='8bit' would keep its state, but its shards "
            f"cannot keep 8-bit state: {problem}; 8-bit state needs shards of whole "
            f"{_lean.BLOCK}-element blocks of the tensor's row-major order, sharded on dim 0. "
            "Use lean_state='bfloat16', or put this parameter in a param group with "
            f"lean_state=None; received a DTensor of shape {tuple(p.shape)} with placements "
            f"{tuple(p.placements)} on a mesh of shape {tuple(p.device_mesh.shape)}"
        )
    return kind


class Optimizer(torch.optim.Optimizer):
    """Base class of descentlab's optimizers (a :class:`torch.optim.Optimizer`).

    Subclasses set the class attributes below and implement
    :meth:`_check_hyperparameters`, :meth:`_active_state` and :meth:`_scalars`.
    """

    #: registry key, e.g. ``"adam"``
    name: ClassVar[str]
    #: one line for ``descentlab list``
    summary: ClassVar[str]
    #: group keys that torch.optim's class of the same name saves; a checkpoint
    #: must have them all to be loadable (keys descentlab adds get defaults)
    torch_keys: ClassVar[tuple[str, ...]]
    #: every per-parameter state tensor the update function can take, in its order
    state_names: ClassVar[tuple[str, ...]]
    #: the convention switches (see :mod:`.conventions`) this rule reads
    switches: ClassVar[tuple[str, ...]] = ()
    #: whether the rule accepts sparse gradients (``nn.Embedding(sparse=True)``)
    sparse_gradients: ClassVar[bool] = False
    #: create state when parameters are added rather than at their first step
    #: (torch.optim's Adagrad does, so its state_dict lists every parameter)
    eager_state: ClassVar[bool] = False
    #: the step-dependent scalars: ``coefficients(step, **hyperparameters)`` -> the
    #: keyword arguments of ``update`` (computed once per step, on the host, by
    #: the fast path, so the compiled kernel does elementwise work only)
    coefficients: ClassVar[Callable[..., dict[str, Any]]]
    #: the pure elementwise update: ``update(param, grad, *state, **coefficients)``
    update: ClassVar[Callable[..., None]]
    #: torch's own fused kernel for the rule, run by the fast path on flat
    #: buffers (and DTensor shards) where the group's configuration is exactly torch's:
    #: ``torch_fused(params, grads, states, steps, **hyperparameters)``, on lists
    #: (``states``: a list per state name) -> whether it ran (False, having changed
    #: nothing, for conventions torch has no kernel for)
    torch_fused: ClassVar[Callable[..., bool] | None] = None
    #: hyperparameters whose term drops out of the rule when they are 0: the fast
    #: path compiles a kernel without that term while the value is 0 (one more
    #: compile when it becomes nonzero; any nonzero value then shares one kernel)
    zero_terms: ClassVar[tuple[str, ...]] = ("weight_decay",)
    #: state tensors that are never negative (second moments, accumulators):
    #: ``lean_state="8bit"`` codes them with the unsigned map, the rest with the signed one
    unsigned_state: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        params: Any,
        defaults: dict[str, Any],
        *,
        convention: Any = "torch",
        skip_nonfinite: bool = False,
        state_dtype: torch.dtype | None = None,
        lean_state: str | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        self._fast_path: _flat.FastPath | None = None
        self._auto: dict[int, tuple[tuple[int, int], bool]] = {}  # group id -> (params layout, large enough)
        # each group's options and lean_state when last checked (see _check_changed_groups)
        self._checked: list[tuple[Any, str | None]] = []
        owner = type(self).__name__
        rule = conventions.resolve(convention, owner)
        defaults = {
            **defaults,
            **rule.switches_for(self.name, self.switches, owner),
            "skip_nonfinite": skip_nonfinite,
            "skipped_steps": 0,
            "state_dtype": state_dtype,
            "lean_state": lean_state,
            "stochastic_rounding": stochastic_rounding,
        }
        self._check_group(defaults)
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{owner}: params must be an ordered collection (a list), not a set: a set's "
                "order changes between runs, and the order ties state to parameters in checkpoints"
            )
        if not isinstance(params, torch.Tensor):
            params = list(params)
            if not params:  # a group may be empty (ZeroRedundancyOptimizer's ranks have some), not all
                raise ValueError(f"{owner}: got an empty parameter list")
        super().__init__(params, defaults)

    # -- what subclasses provide ------------------------------------------------

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raise ValueError/TypeError for any invalid hyperparameter in ``group``."""
        raise NotImplementedError

    def _active_state(self, group: dict[str, Any]) -> dict[str, float]:
        """The state tensors this group's options use, with their initial values."""
        raise NotImplementedError

    def _scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters of ``coefficients``, read from ``group``."""
        raise NotImplementedError

    # -- construction and groups -----------------------------------------------

    @classmethod
    def from_convention(
        cls, params: Any, convention: str | conventions.Convention, **kwargs: Any
    ) -> Optimizer:
        """Build with another framework's formulas *and* its default hyperparameters.

        ``RMSprop.from_convention(params, "keras")`` is Keras's ``RMSprop()``:
        ``alpha=0.9, eps=1e-7``, epsilon inside the square root. Arguments given
        here override that framework's defaults.
        """
        rule = conventions.resolve(convention, cls.__name__)
        return cls(params, **{**rule.defaults.get(cls.name, {}), **kwargs}, convention=rule)

    def _check_group(self, group: dict[str, Any]) -> None:
        owner = type(self).__name__
        _checks.in_range(owner, "lr", group["lr"])
        _checks.flag(owner, "maximize", group["maximize"])
        _checks.flag(owner, "skip_nonfinite", group["skip_nonfinite"])
        dtype = _checks.floating_dtype(owner, "state_dtype", group["state_dtype"])
        rounding = _checks.flag(owner, "stochastic_rounding", group.get("stochastic_rounding", False))
        if rounding and not self._active_state(group):
            raise ValueError(
                f"{owner}: stochastic_rounding=True draws on the step count, which this "
                "configuration does not keep (SGD keeps one with momentum > 0); received "
                "stochastic_rounding=True"
            )
        lean = group.get("lean_state")
        if lean is not None:
            _checks.choice(owner, "lean_state", lean, _lean.KINDS)
            if dtype is not None and dtype.itemsize < 4:
                raise ValueError(
                    f"{owner}: lean_state={lean!r} cannot be combined with state_dtype={dtype}: "
                    "lean state rounds large parameters' state stochastically into its own format, "
                    "and state_dtype is the full-precision dtype of the small parameters it leaves "
                    f"out, so a half-precision one contradicts it; received lean_state={lean!r}, "
                    f"state_dtype={dtype}"
                )
        skipped = group["skipped_steps"]
        if isinstance(skipped, bool) or not isinstance(skipped, int) or skipped < 0:
            raise ValueError(
                f"{owner}: skipped_steps must be an integer >= 0; received skipped_steps={skipped!r}"
            )
        for switch in self.switches:
            _checks.flag(owner, switch, group[switch])
        foreach = _checks.optional_flag(owner, "foreach", group.get("foreach"))
        fused = _checks.optional_flag(owner, "fused", group.get("fused"))
        if foreach and fused:
            raise ValueError(f"{owner}: fused=True and foreach=True cannot be set together")
        _checks.flag(owner, "capturable", group.get("capturable", False))
        if _checks.flag(owner, "differentiable", group.get("differentiable", False)):
            raise ValueError(
                f"{owner}: differentiable=True (autograd through the optimizer step) is not "
                "supported by descentlab; use torch.optim for that; received differentiable=True"
            )
        self._check_hyperparameters(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its parameters and hyperparameters.

        Nothing is added if any check fails. A group may name a
        ``"convention"`` of its own, which sets that group's switches.
        """
        owner = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{owner}: a param group must be a dict; received {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(
                f"{owner}: a param group needs a 'params' entry; received keys {sorted(param_group)}"
            )
        where = f"param group {len(self.param_groups)}: " if self.param_groups else ""
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{owner}: {where}params must be a list, not a set (a set has no stable order)")
        params = list(params)  # may be empty, as in torch.optim: a rank of ZeroRedundancyOptimizer
        tensors = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in params]
        self._check_tensors(owner, where, tensors)
        if "convention" in group:
            rule = conventions.resolve(group.pop("convention"), owner)
            group.update(rule.switches_for(self.name, self.switches, owner))
        merged = {**self.defaults, **group}
        self._check_group(merged)
        for i, p in enumerate(tensors):
            _lean_kind(owner, f"{where}params[{i}]", merged, p)
        group["params"] = params
        super().add_param_group(group)
        if self.eager_state:
            added = self.param_groups[-1]
            for p in added["params"]:
                self._ensure_state(p, added, self.state[p])

    def _check_tensors(self, owner: str, where: str, tensors: list[Any]) -> None:
        seen: set[int] = set()
        taken = {id(p): g for g, group in enumerate(self.param_groups) for p in group["params"]}
        for i, p in enumerate(tensors):
            at = f"{where}params[{i}]"
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"{owner}: {at} must be a torch.Tensor; received {type(p).__name__}")
            if not (p.is_floating_point() or p.is_complex()):
                raise TypeError(
                    f"{owner}: {at} has dtype {p.dtype}; only floating-point or complex tensors "
                    "can be optimized"
                )
            if not (p.is_leaf or p.retains_grad):
                raise ValueError(
                    f"{owner}: {at} is not a leaf tensor (it was computed from other tensors, so "
                    "its gradient is not kept); optimize the leaf it came from, or pass "
                    "x.detach().requires_grad_()"
                )
            if id(p) in seen:
                raise ValueError(f"{owner}: {at} appears twice in the same group")
            if id(p) in taken:
                raise ValueError(
                    f"{owner}: {at} is already in param group {taken[id(p)]}; a parameter can "
                    "belong to one group only"
                )
            seen.add(id(p))

    # -- state -----------------------------------------------------------------

    def _ensure_state(self, p: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Create whatever state ``group``'s options need and ``state`` lacks, in the form they ask for."""
        active = self._active_state(group)
        if not active:
            return
        if "step" not in state:
            # A checkpoint from a framework that does not count steps (torch's
            # SGD) has state but no step: it has taken at least one.
            start = 1.0 if state else 0.0
            device = p.device if group.get("capturable") else "cpu"
            state["step"] = torch.tensor(start, dtype=_flat.step_dtype(), device=device)
        lean = _lean_kind(type(self).__name__, "a parameter", group, p)
        full = _flat.state_dtype(group, p)
        for key, initial in active.items():
            if key in state:
                if lean is not None or state[key].dtype in (torch.uint8, torch.bfloat16):
                    # lean_state changed since the state was made: convert it
                    _lean.convert(state, key, lean, key not in self.unsigned_state, full)
                continue
            # A complex parameter is updated as (real, imaginary) pairs, both
            # parts starting from the initial value (torch.optim does the same).
            fill = complex(initial, initial) if p.is_complex() else initial
            dtype = full if lean is None else torch.float32
            state[key] = torch.full_like(p, fill, dtype=dtype, memory_format=torch.preserve_format)
            if lean is not None:
                _lean.convert(state, key, lean, key not in self.unsigned_state, full)

    # -- the step --------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one update of every parameter that has a gradient.

        Args:
            closure: optional; re-evaluates the model and returns the loss.

        Parameters whose ``.grad`` is None are skipped and keep their state.
        """
        if not torch.compiler.is_compiling():
            self._check_changed_groups()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Prepare every group first (fast-path buckets refreshed, gradients
        # gathered, every check made): no number changes until all has passed.
        plans = []
        for index, group in enumerate(self.param_groups):
            prepared, params = [], None
            fast = self._use_fast_path(group)
            if fast:
                if self._fast_path is None:
                    self._fast_path = _flat.FastPath()
                prepared, params = self._fast_path.prepare(self, group)
            if params is None:
                params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    self._check_sparse(index, group, p)
                self._check_state(p, group)
            plans.append((group, prepared, params, fast))
        guarded = [
            g
            for group, prepared, params, _ in plans
            if group["skip_nonfinite"]
            for g in (*(x for b, has in prepared for x in b.gradients(has)), *(p.grad for p in params))
        ]
        if guarded and not _all_finite(guarded):
            for group in self.param_groups:
                group["skipped_steps"] += 1
            return loss
        for group, prepared, params, fast in plans:
            if prepared:
                assert self._fast_path is not None
                params = params + self._fast_path.update(self, group, prepared)
            if params:
                self._step_tensors(group, params, self._fast_path if fast else None)
        return loss

    @property
    def skipped_steps(self) -> int:
        """How many steps ``skip_nonfinite`` has skipped (kept in the state_dict)."""
        return self.param_groups[0]["skipped_steps"]

    def _check_sparse(self, index: int, group: dict[str, Any], p: torch.Tensor) -> None:
        owner = type(self).__name__
        at = f"param group {index}, params[{_position(group['params'], p)}]"
        if not self.sparse_gradients:
            raise RuntimeError(
                f"{owner} does not support sparse gradients ({at} has one); use Adagrad or SGD, "
                "or torch.optim.SparseAdam"
            )
        if p.is_complex():
            raise RuntimeError(f"{owner}: sparse gradients of complex parameters are not supported ({at})")
        self._check_sparse_options(owner, at, group)

    def _check_changed_groups(self) -> None:
        """Check again, before the step, each group whose options changed since they were checked.

        The constructor, ``add_param_group`` and ``load_state_dict`` check
        every option; a value put into ``param_groups`` another way (an
        assignment, a scheduler, or ZeroRedundancyOptimizer, which copies a
        checkpoint's options into each rank's optimizer without them) is
        checked here, with ``lean_state="8bit"`` newly set refused for a
        DTensor whose shards cannot keep it. An option counts as changed when
        it is another object (or a list whose items changed): a tensor's value
        is read when it is checked, not at every step, as at construction. A
        step compiled by torch.compile skips this (the compiler traces the
        step, and a check there would break its graph).
        """
        checked = self._checked
        del checked[len(self.param_groups) :]
        owner = type(self).__name__
        for index, group in enumerate(self.param_groups):
            options = _options(group)
            if index < len(checked) and _same_options(checked[index][0], options):
                continue
            try:
                self._check_group(group)
                was = checked[index][1] if index < len(checked) else None
                if group["lean_state"] == "8bit" and was != "8bit":
                    for i, p in enumerate(group["params"]):  # a DTensor whose shards cannot keep it
                        _lean_kind(owner, f"param group {index}, params[{i}]", group, p)
            except (TypeError, ValueError) as error:
                message = (
                    f"{error} (in param group {index}, whose options were changed after they were "
                    "checked: by an assignment to param_groups, a scheduler, or "
                    "ZeroRedundancyOptimizer.load_state_dict; no parameter was updated)"
                )
                if isinstance(error, _checks.OptionError):
                    raise _checks.OptionError(message, error.rule, **error.values) from None
                raise type(error)(message) from None
            if index < len(checked):
                checked[index] = (options, group["lean_state"])
            else:
                checked.append((options, group["lean_state"]))

    def _check_state(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Raise ValueError for a state tensor of ``p`` whose shape is not ``p``'s.

        load_state_dict checks a checkpoint's shapes; state put into
        ``optimizer.state`` another way (an assignment, or
        ZeroRedundancyOptimizer.load_state_dict, which writes each rank's
        state itself) is checked here, before the step changes any number.
        """
        state = self.state.get(p)
        if not state:
            return
        shape = p.shape
        for key in self.state_names:
            value = state.get(key)
            if value is not None and getattr(value, "shape", shape) != shape:
                index = next(i for i, g in enumerate(self.param_groups) if g is group)
                at = f"param group {index}, params[{_position(group['params'], p)}]"
                raise ValueError(
                    f"{type(self).__name__}: the state {key!r} of {at} has shape {tuple(value.shape)}, "
                    f"but the parameter has shape {tuple(p.shape)}; state put into optimizer.state "
                    "from outside (an assignment, or ZeroRedundancyOptimizer.load_state_dict, which "
                    "does not run this optimizer's checks) must have its parameter's shape"
                )

    def _check_sparse_options(self, owner: str, at: str, group: dict[str, Any]) -> None:
        """Raise if ``group``'s options cannot be combined with a sparse gradient."""

    def _use_fast_path(self, group: dict[str, Any]) -> bool:
        """Whether to try the fast path for ``group`` (see :mod:`._flat`)."""
        choice = _flat.wanted(group)
        if choice is False or group.get("capturable") or torch.compiler.is_compiling():
            # capturable: CUDA-graph capture needs the per-tensor path's on-device
            # step counts; under torch.compile, the caller's compiler does the fusing.
            return False
        if choice:
            return True
        layout = (id(group["params"]), len(group["params"]))
        if self._auto.get(id(group), (None,))[0] != layout:
            self._auto[id(group)] = (
                layout,
                sum(p.numel() for p in group["params"]) >= _flat.AUTO_MIN_ELEMENTS,
            )
        return self._auto[id(group)][1]

    def implementation(self) -> list[str]:
        """For each parameter group, which implementation updated it last, in words."""
        if self._fast_path is None:
            return ["per-tensor" for _ in self.param_groups]
        return [self._fast_path.describe(group) for group in self.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients, as torch.optim does.

        With ``set_to_none=False`` the fast path zeroes each flat gradient buffer
        in one pass, and backward then accumulates straight into it: the
        fastest loop. With ``set_to_none=True`` (the default) gradients become
        None, as in torch; the next step copies the new ones into the buffer.
        """
        if set_to_none or self._fast_path is None:
            super().zero_grad(set_to_none)
            return
        done = self._fast_path.zero_grad()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and id(p) not in done:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    def _step_tensors(
        self, group: dict[str, Any], params: list[torch.Tensor], fast: _flat.FastPath | None = None
    ) -> None:
        """The per-tensor path: the rule applied to each parameter in turn.

        With ``fast`` (the group wants the fast path), DTensor parameters'
        shards are updated in place by the fast path's kernels where they can
        be (:func:`._flat.shard_steps`); ``fast`` records which kernels ran.
        """
        scalars = self._scalars(group)
        if fast is not None:
            params, fast.shards[id(group)] = _flat.shard_steps(self, group, params, scalars, fast.scratch)
        names = self._active_state(group)
        # Under torch.compile, reading a tensor on the host breaks the graph (once
        # per parameter here): keep the step on the device, as capturable does.
        on_device = group.get("capturable", False) or torch.compiler.is_compiling()
        coefficients, update = type(self).coefficients, type(self).update
        for p in params:
            state = self.state[p]
            self._ensure_state(p, group, state)
            step: Any = None
            if names:
                state["step"] += 1
                step = _device_step(state["step"], p) if on_device else state["step"].item()
            grad = p.grad
            target = None
            if group.get("stochastic_rounding") and p.dtype == torch.bfloat16:
                # the rule on a float32 copy, rounded back stochastically: plain rounding
                # drops every update smaller than half a bfloat16 step of the parameter
                target, p = p, p.detach().float()
            lean = _lean.kind(group, p) if names else None
            if lean is not None:
                self._lean_update(p, grad, state, names, step, coefficients(step, **scalars))
            else:
                tensors = [state[n] if n in names else None for n in self.state_names]
                if target is not None:  # the float32 copy's arithmetic: float32 at least, as the fast path's
                    grad = grad.to(torch.promote_types(_flat.state_dtype(group, target), p.dtype))
                elif names and _flat.state_dtype(group, p) != p.dtype:
                    grad = grad.to(_flat.state_dtype(group, p))  # the arithmetic in the state's precision
                if p.is_complex():
                    p, grad = torch.view_as_real(p), torch.view_as_real(grad)
                    tensors = [None if t is None else torch.view_as_real(t) for t in tensors]
                update(p, grad, *tensors, **coefficients(step, **scalars))
            if target is not None:
                target.copy_(_lean.to_bfloat16(p, step, _lean.salt("param")))

    def _lean_update(
        self,
        p: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        names: dict[str, float],
        step: Any,
        coefficients: dict[str, Any],
    ) -> None:
        """The per-tensor path on lean state: dequantise, the same ``update``, requantise."""
        compute = _flat.compute_dtype(p.dtype, torch.float32)
        dense = [
            _lean.read(state, n, n not in self.unsigned_state, compute) if n in names else None
            for n in self.state_names
        ]
        type(self).update(p, grad.to(compute), *dense, **coefficients)
        values = {n: value for n, value in zip(self.state_names, dense, strict=True) if value is not None}
        _lean.write_(state, values, self.unsigned_state, step)

    def _lr(self, group: dict[str, Any]) -> float | torch.Tensor:
        """The group's learning rate; a tensor lr is read now, unless capturable or compiling."""
        lr = group["lr"]
        if isinstance(lr, torch.Tensor) and not (
            group.get("capturable", False) or torch.compiler.is_compiling()
        ):
            return lr.item()
        return lr

    # -- checkpoints -----------------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # The buckets are not part of the state (torch's __getstate__ leaves them
        # out of pickles and deep copies); the next step rebuilds them.
        self._fast_path = None
        self._auto = {}
        self._checked = []
        # Checkpoints from torch.optim (or older descentlab) lack the keys
        # descentlab adds; give them the defaults, which reproduce torch's rule.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            # ... and a step saved as a number (torch < 1.12) becomes the tensor it is now,
            # as torch.optim's own classes convert it
            for p in group["params"]:
                entry = self.state.get(p) if isinstance(p, torch.Tensor) else None
                if entry is not None and "step" in entry and not isinstance(entry["step"], torch.Tensor):
                    device = p.device if group.get("capturable") else "cpu"
                    entry["step"] = torch.tensor(
                        float(entry["step"]), dtype=_flat.step_dtype(), device=device
                    )

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's state_dict, each parameter's state a plain dict as torch.optim's are.

        (While the fast path holds the state, ``self.state`` and its entries
        count their changes: see :class:`._flat.StateTable`. A checkpoint
        holds no descentlab type, so ``torch.load(weights_only=True)`` reads it.)
        """
        state_dict = super().state_dict()
        state_dict["state"] = {k: dict(v) for k, v in state_dict["state"].items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint, after checking all of it against this optimizer.

        Raises ValueError, before any state or hyperparameter is replaced, for a
        checkpoint of another optimizer, another number of groups or parameters,
        state of another shape, or invalid hyperparameters. Checkpoints saved by
        torch.optim's class of the same name load as they are.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"{type(self).__name__}: a state_dict must be a dict; received {type(state_dict).__name__}"
            )
        state_dict = state_dict.copy()
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        params = self._check_checkpoint(state_dict)
        # lean_state is how this optimizer stores its state, not a hyperparameter of
        # the run: a checkpoint's state is converted to it, whatever form it was saved in.
        lean = [group["lean_state"] for group in self.param_groups]
        # torch's load_state_dict runs the hooks too: the pre-hooks have run above, and
        # the post-hooks run below, once the state is in the form this optimizer keeps.
        hooks = self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        try:
            super().load_state_dict(state_dict)
        finally:
            self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks = hooks
        for group, kind in zip(self.param_groups, lean, strict=True):
            group["lean_state"] = kind
        # torch.optim casts floating state to the parameter's dtype (8-bit codes
        # and their scales included); where the group keeps its state in another
        # dtype or form, take the saved values again and convert them.
        owner = {id(p): g for g in self.param_groups for p in g["params"]}
        for pid, entry in state_dict["state"].items():
            p = params.get(pid)
            if p is None:
                continue
            group = owner[id(p)]
            kind = _lean.kind(group, p)
            saved_lean = any(_lean.ABSMAX.format(n) in entry for n in self.state_names)
            if group.get("state_dtype") is None and kind is None and not saved_lean:
                continue
            state = self.state[p]
            full = _flat.state_dtype(group, p)
            for key in self.state_names:
                if key not in entry:
                    continue
                absmax = _lean.ABSMAX.format(key)
                state.pop(absmax, None)
                # copies: the state must not share memory with the checkpoint's (an in-memory one's)
                state[key] = entry[key].to(device=p.device, copy=True)
                if absmax in entry:
                    state[absmax] = entry[absmax].to(device=p.device, dtype=torch.float32, copy=True)
                _lean.convert(state, key, kind, key not in self.unsigned_state, full)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def _check_checkpoint(self, state_dict: dict[str, Any]) -> dict[Any, torch.Tensor]:
        """Check all of ``state_dict``; return its parameter ids mapped to this optimizer's parameters."""
        owner = type(self).__name__
        if not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                f"{owner}: not an optimizer state_dict: expected the keys 'state' and "
                f"'param_groups'; received {sorted(map(str, state_dict))}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{owner}: the checkpoint has {len(saved_groups)} param group(s); this "
                f"optimizer has {len(self.param_groups)}"
            )
        params: dict[Any, torch.Tensor] = {}
        kinds: dict[int, str | None] = {}  # each parameter's lean form once loaded
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            missing = [k for k in self.torch_keys if k not in saved]
            if missing:
                raise ValueError(
                    f"{owner}: the checkpoint was saved by another optimizer{_guess(saved)}: its "
                    f"param group {index} lacks {', '.join(missing)}, which {owner} stores"
                )
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{owner}: param group {index} of the checkpoint has {len(saved['params'])} "
                    f"parameters; this optimizer's has {len(group['params'])}"
                )
            merged = {**self.defaults, **{k: v for k, v in saved.items() if k != "params"}}
            # checked with the form this optimizer keeps its state in, which the load keeps
            # (a checkpoint's centered=True cannot come into an RMSprop with 8-bit state)
            kept = {**merged, "lean_state": group["lean_state"]}
            self._check_group(kept)
            for i, p in enumerate(group["params"]):
                _lean_kind(owner, f"param group {index}, params[{i}]", kept, p)
                kinds[id(p)] = _lean.kind(kept, p)
            params.update(zip(saved["params"], group["params"], strict=True))
        scales = {_lean.ABSMAX.format(n): n for n in self.state_names}
        known = set(self.state_names) | {"step"} | set(scales)
        for pid, entry in state_dict["state"].items():
            if pid not in params:
                continue
            p = params[pid]
            if not isinstance(entry, dict):
                raise ValueError(f"{owner}: the state of parameter {pid} is not a dict")
            unknown = sorted(set(entry) - known)
            if unknown:
                raise ValueError(
                    f"{owner}: the checkpoint was saved by another optimizer: the state of "
                    f"parameter {pid} has {', '.join(map(repr, unknown))}; {owner} keeps "
                    f"{', '.join(map(repr, sorted(known)))}"
                )
            for key, value in entry.items():
                if key == "step":
                    if isinstance(value, torch.Tensor) and value.numel() != 1:
                        raise ValueError(f"{owner}: the step of parameter {pid} must be a scalar")
                    count = value.item() if isinstance(value, torch.Tensor) else value
                    if (
                        isinstance(count, bool)
                        or not isinstance(count, numbers.Real)
                        or not (math.isfinite(count) and count >= 0 and count == int(count))
                    ):
                        raise ValueError(
                            f"{owner}: the step of parameter {pid} must be a whole count >= 0; "
                            f"received {value!r}"
                        )
                elif not isinstance(value, torch.Tensor):
                    raise ValueError(
                        f"{owner}: the checkpoint's {key!r} of parameter {pid} must be a tensor; "
                        f"received {type(value).__name__} {value!r}"
                    )
                elif key in scales:
                    self._check_scales(owner, pid, p, scales[key], entry)
                elif (
                    isinstance(value, torch.Tensor)
                    and value.dtype == torch.uint8
                    and (_lean.ABSMAX.format(key) not in entry)
                ):
                    raise ValueError(
                        f"{owner}: the checkpoint's {key!r} of parameter {pid} holds 8-bit codes "
                        f"without their block scales {_lean.ABSMAX.format(key)!r}"
                    )
                elif isinstance(value, torch.Tensor) and value.shape != p.shape:
                    raise ValueError(
                        f"{owner}: the checkpoint's {key!r} of parameter {pid} has shape "
                        f"{tuple(value.shape)}, but the parameter has shape {tuple(p.shape)}"
                    )
                elif kinds.get(id(p)) == "8bit" and value.dtype != torch.uint8:
                    # quantised when loaded: refused now, before anything is replaced
                    real = torch.view_as_real(value) if value.is_complex() else value
                    if not bool(torch.isfinite(real).all()):
                        raise ValueError(
                            f"{owner}: the checkpoint's {key!r} of parameter {pid} holds NaN or "
                            "infinity, which lean_state='8bit' cannot quantise"
                        )
                    if key in self.unsigned_state and bool((real < 0).any()):
                        raise ValueError(
                            f"{owner}: the checkpoint's {key!r} of parameter {pid} has a negative "
                            f"value ({real.min().item()!r}); lean_state='8bit' keeps it as a count >= 0"
                        )
        return params

    @staticmethod
    def _check_scales(owner: str, pid: Any, p: torch.Tensor, name: str, entry: dict[str, Any]) -> None:
        """Check an 8-bit state's block scales in a checkpoint: finite, >= 0, one per block."""
        scale, codes = entry[_lean.ABSMAX.format(name)], entry.get(name)
        where = f"{owner}: the checkpoint's {_lean.ABSMAX.format(name)!r} of parameter {pid}"
        if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8:
            raise ValueError(f"{where} belongs to 8-bit codes, but {name!r} is not a uint8 tensor")
        expected = (_lean.blocks(p.numel()),)
        if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != expected:
            shape = tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__
            raise ValueError(
                f"{where} must have shape {expected} (one per block of {_lean.BLOCK}); received {shape}"
            )
        if not bool((torch.isfinite(scale) & (scale >= 0)).all()):
            raise ValueError(f"{where} must be finite and >= 0; it holds NaN, infinity or a negative value")


def _options(group: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``group``'s options to compare: its keys and list lengths, then its values and list items."""
    params = group["params"]
    lists = [v for v in group.values() if type(v) is list and v is not params]
    return (tuple(group), *map(len, lists)), (*group.values(), *chain.from_iterable(lists))


def _same_options(
    saved: tuple[tuple[Any, ...], tuple[Any, ...]], now: tuple[tuple[Any, ...], tuple[Any, ...]]
) -> bool:
    """Whether the options are the same objects (an equal float put in again counts as a change)."""
    return saved[0] == now[0] and all(map(operator.is_, saved[1], now[1]))


def _position(params: list[torch.Tensor], p: torch.Tensor) -> int:
    """``p``'s index in ``params``, by identity (``list.index`` would compare tensors elementwise)."""
    return next(i for i, q in enumerate(params) if q is p)


def _guess(saved_group: dict[str, Any]) -> str:
    """`` (probably SGD)`` when a saved group's keys match one optimizer's."""
    from . import OPTIMIZERS  # the registry imports the subclasses of this module

    keys = set(saved_group)
    matches = [cls.__name__ for cls in OPTIMIZERS.values() if set(cls.torch_keys) <= keys]
    return f" (probably {matches[0]})" if matches else ""
