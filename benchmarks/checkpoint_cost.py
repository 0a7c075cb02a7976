"""How long each checkpoint of an online run takes, against how far the run has got.

A benchmark, not a test: it prints one line per checkpoint. Run it with

    python benchmarks/checkpoint_cost.py --updates 200000 --every 10000

The record's columns grow with the run; a checkpoint appends only what is new to
its columns file, so its time should stay flat (it grew linearly, and a run's
checkpoints quadratically, while each one rewrote the whole record).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from descentlab.optim import Adam
from descentlab.train import Budget, Every, GeneratedStream, Online, fit, loop


def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(8, generator=generator)
    return x, (x[0] > 0).long()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200_000, help="length of the online run")
    parser.add_argument("--every", type=int, default=10_000, help="updates between checkpoints")
    args = parser.parse_args()

    times: list[tuple[int, float]] = []
    save = loop._Loop._save

    def timed(self: loop._Loop) -> None:
        start = time.perf_counter()
        save(self)
        times.append((self.position.step, time.perf_counter() - start))

    loop._Loop._save = timed  # type: ignore[method-assign]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = Path(directory) / "run.ckpt"
        fit(
            model, Adam(model.parameters(), lr=1e-3), GeneratedStream(sample, seed=0),
            loss=torch.nn.functional.cross_entropy, regime=Online(), budget=Budget(steps=args.updates),
            checkpoint=checkpoint, checkpoint_every=Every(args.every), eval_every=Every(args.updates),
        )  # fmt: skip
        columns = checkpoint.with_name(checkpoint.name + ".columns").stat().st_size
        print(f"checkpoint file {checkpoint.stat().st_size} bytes; columns file {columns} bytes")
    print("updates so far   checkpoint ms")
    for step, seconds in times:
        print(f"{step:>14}   {seconds * 1e3:12.2f}")
    half = len(times) // 2
    early = statistics.median(s for _, s in times[1:half])
    late = statistics.median(s for _, s in times[half:])
    print(f"median of the later half / of the earlier half: {late / early:.2f}")


if __name__ == "__main__":
    main()
