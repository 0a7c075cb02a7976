"""What stochastic rounding costs a bfloat16-state Adam step on the CPU.

A benchmark, not a test: it prints the median step time of each form. Run it with

    python benchmarks/bf16_rounding.py --rounds 5 --steps 10

(``--out FILE`` keeps the timings as JSON, which the documentation renders:
benchmarks/bf16-rounding.json.)

On the bench's transformer workload (15.8M parameters, one flat buffer in
blocks of 256) it times, in rounds that take each form in turn (the host's
speed drifts; compare within a round): Adam's rule on bfloat16 moments compiled
as the fast path compiles its kernels (``optim._flat._corrected``), writing the
moments back with the fast path's stochastic rounding (``_lean.bfloat16_states``)
and, for comparison, rounded to nearest (which loses the second moment: see
docs/lean-state.md); descentlab's own bfloat16-state Adam step; and torch's
fused float32 Adam, which the lean-state target (1.25x) is stated against.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch

from descentlab import bench
from descentlab.optim import Adam, _lean
from descentlab.optim._flat import _corrected


def _moments(m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, p: torch.Tensor, scalars: torch.Tensor):
    b1, b2, bc2, eps, lr = scalars.unbind()
    m_new = m.float() * b1 + g * (1 - b1)
    v_new = v.float() * b2 + g * g * (1 - b2)
    p.sub_(m_new / ((v_new / bc2).sqrt() + eps) * lr)
    return m_new, v_new


def stochastic(p, g, m, v, seed, scalars):
    m_new, v_new = _moments(m, v, g, p, scalars)
    m_out, v_out = _lean.bfloat16_states(
        [m_new, v_new], seed, [_lean.salt("exp_avg"), _lean.salt("exp_avg_sq")]
    )
    m.copy_(m_out)
    v.copy_(v_out)


def nearest(p, g, m, v, seed, scalars):
    m_new, v_new = _moments(m, v, g, p, scalars)
    m.copy_(m_new.to(torch.bfloat16))
    v.copy_(v_new.to(torch.bfloat16))


def main(argv: list[str] | None = None) -> None:
    parser = bench.forms_parser(__doc__.splitlines()[0], rounds=5, steps=10)
    args = bench.forms_check(parser, parser.parse_args(argv))

    generator = torch.Generator().manual_seed(0)
    shapes = bench.WORKLOADS["transformer"].scaled(args.scale).shapes
    n = max(1, sum(math.prod(s) for s in shapes) // _lean.BLOCK) * _lean.BLOCK
    p, g = torch.randn(2, n // _lean.BLOCK, _lean.BLOCK, generator=generator)
    g *= 1e-3
    m, v = torch.zeros_like(p, dtype=torch.bfloat16), torch.zeros_like(p, dtype=torch.bfloat16)
    scalars = torch.tensor([0.9, 0.999, 0.5, 1e-8, 1e-3])
    seed = torch.tensor(7)

    def kernel(rule: Callable[..., None]) -> Callable[[], None]:
        fn = _corrected(rule, f"bf16_rounding_{rule.__name__}").fn
        return lambda: fn(p, g, m, v, seed, scalars)

    def optimizer(**kwargs) -> Callable[[], None]:
        params = [torch.randn(s, generator=generator, requires_grad=True) for s in shapes]
        for q in params:
            q.grad = torch.randn(q.shape, generator=generator) * 1e-3
        make = Adam if kwargs.pop("ours") else torch.optim.Adam
        return make(params, lr=1e-3, **kwargs).step

    forms = {
        "Adam's rule, bfloat16 moments, stochastic rounding (compiled as the fast path's)": kernel(
            stochastic
        ),
        "Adam's rule, bfloat16 moments, rounded to nearest (compiled the same way)": kernel(nearest),
        "descentlab Adam, fast path, lean_state='bfloat16'": optimizer(
            ours=True, fused=True, lean_state="bfloat16"
        ),
        "torch.optim Adam, fused=True, float32 state": optimizer(ours=False, fused=True),
    }
    for step in forms.values():
        for _ in range(3):  # compiled, state made
            step()
    times = bench.time_forms(forms, args.rounds, args.steps)
    title = (
        f"Adam's rule with bfloat16 moments on {n / 1e6:.1f}M parameters, beside descentlab's and "
        "torch's Adam steps"
    )
    print(f"{title}, {torch.get_num_threads()} threads, medians of {args.rounds} x {args.steps} steps:")
    for form, rounds in times.items():
        print(f"  {form}: {statistics.median([ms for r in rounds for ms in r]):.2f} ms")
    rows = [{"group": None, "form": form, "round_ms": rounds, "note": None} for form, rounds in times.items()]
    bench.keep_forms(args, "benchmarks/bf16_rounding.py", argv, title, rows)


if __name__ == "__main__":
    main()
