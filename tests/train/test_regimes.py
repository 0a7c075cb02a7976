"""The three regimes do what they promise: exact full-batch gradients in bounded memory,
each sample once per epoch in mini-batches, one update per sample online (test-then-train)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from descentlab.optim import SGD as DescentSGD
from descentlab.optim import Adam as DescentAdam
from descentlab.train import Budget, Every, FullBatch, MiniBatch, Online, accuracy, fit
from helpers import relative_error


class Recorder(torch.optim.SGD):
    """Plain SGD that keeps a copy of every gradient it is given."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, lr=lr)
        self.grads: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self.grads.append([p.grad.clone() for g in self.param_groups for p in g["params"]])
        super().step()
        return loss


class Spy(torch.nn.Module):
    """A linear model that records the inputs of every call made in training mode."""

    def __init__(self, d: int = 3, out: int = 1, dtype=torch.float64):
        super().__init__()
        self.linear = torch.nn.Linear(d, out, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.linspace(-1, 1, d * out, dtype=dtype).reshape(out, d))
            self.linear.bias.fill_(0.1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x).squeeze(-1)


def regression_data(n: int = 100, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)[:d] + 0.1 * torch.randn(
        n, generator=g, dtype=torch.float64
    )
    return x, y


def mse(output, target):
    return ((output - target) ** 2).mean()


# -- full batch -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 32, 99, 100, 1000, None])
def test_full_batch_gradient_is_the_mean_gradient_whatever_the_chunk(chunk):
    x, y = regression_data(100)
    reference = Spy()
    mse(reference(x), y).backward()
    expected = [p.grad for p in reference.parameters()]

    model = Spy()
    optimizer = Recorder(model.parameters())
    record = fit(model, optimizer, (x, y), loss=mse, regime=FullBatch(chunk), budget=Budget(steps=1))

    for got, want in zip(optimizer.grads[0], expected):
        assert relative_error(got, want) <= 1e-13
    assert record.train_loss[0] == pytest.approx(mse(reference(x), y).item(), rel=1e-13)
    # Memory is bounded by the chunk: the model never sees more samples at once.
    assert max(len(s) for s in model.seen) == min(chunk or 100, 100)
    assert sum(len(s) for s in model.seen) == 100
    assert (record.updates, record.samples_seen, record.epochs) == (1, 100, 1)


def test_full_batch_makes_one_update_per_pass():
    x, y = regression_data(50)
    model = Spy()
    optimizer = Recorder(model.parameters(), lr=0.05)
    record = fit(model, optimizer, (x, y), loss=mse, regime=FullBatch(16), budget=Budget(epochs=5))
    assert record.updates == len(optimizer.grads) == 5
    assert record.samples == [50, 100, 150, 200, 250]
    assert record.train_loss == sorted(record.train_loss, reverse=True)  # exact gradients: monotone here


# -- mini-batch -----------------------------------------------------------------------


def test_mini_batch_visits_each_sample_once_per_epoch_in_a_new_order():
    n, b = 103, 10
    x = torch.arange(n, dtype=torch.float64).reshape(n, 1)
    y = torch.zeros(n, dtype=torch.float64)
    model = Spy(d=1)
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.0),
        (x, y),
        loss=mse,
        regime=MiniBatch(b),
        budget=Budget(epochs=3),
    )
    sizes = [len(s) for s in model.seen]
    assert sizes == ([10] * 10 + [3]) * 3
    assert record.updates == 33 and record.epochs == 3 and record.samples_seen == 3 * n
    orders = []
    for epoch in range(3):
        seen = torch.cat(model.seen[11 * epoch : 11 * (epoch + 1)]).reshape(-1).long()
        assert sorted(seen.tolist()) == list(range(n))
        orders.append(seen.tolist())
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch


def test_mini_batch_drop_last_skips_the_short_batch():
    n, b = 103, 10
    x = torch.arange(n, dtype=torch.float64).reshape(n, 1)
    model = Spy(d=1)
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.0),
        (x, torch.zeros(n, dtype=torch.float64)),
        loss=mse,
        regime=MiniBatch(b, drop_last=True),
        budget=Budget(epochs=2),
    )
    assert [len(s) for s in model.seen] == [10] * 20
    for epoch in range(2):
        seen = torch.cat(model.seen[10 * epoch : 10 * (epoch + 1)]).reshape(-1).tolist()
        assert len(set(seen)) == 100
    assert record.samples_seen == 200 and record.epochs == 2


def test_mini_batch_order_comes_from_the_seed():
    n = 40
    x = torch.arange(n, dtype=torch.float64).reshape(n, 1)

    def order(seed):
        model = Spy(d=1)
        fit(
            model,
            DescentSGD(model.parameters(), lr=0.0),
            (x, x[:, 0]),
            loss=mse,
            budget=Budget(epochs=1),
            seed=seed,
        )
        return torch.cat(model.seen).reshape(-1).tolist()

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_mini_batch_refuses_drop_last_without_a_batch():
    x, y = regression_data(5)
    model = Spy()
    with pytest.raises(ValueError, match="leaves no batch"):
        fit(
            model,
            Recorder(model.parameters()),
            (x, y),
            loss=mse,
            regime=MiniBatch(8, drop_last=True),
            budget=Budget(epochs=1),
        )


# -- online ------------------------------------------------------------------------------


def test_online_makes_exactly_one_update_per_sample():
    x, y = regression_data(50)
    model = Spy()
    optimizer = Recorder(model.parameters(), lr=0.01)
    record = fit(model, optimizer, (x, y), loss=mse, regime=Online(), budget=Budget(epochs=2))
    assert record.updates == len(optimizer.grads) == 100
    assert [len(s) for s in model.seen] == [1] * 100
    assert record.samples == list(range(1, 101))
    for epoch in range(2):  # each pass a permutation of the data
        seen = torch.cat(model.seen[50 * epoch : 50 * (epoch + 1)])
        assert sorted(seen[:, 0].tolist()) == sorted(x[:, 0].tolist())


def stream_of(x, y):
    """A replayable stream: a new generator over the samples each time it is iterated."""

    class Stream:
        def __iter__(self):
            return zip(x, y)

    return Stream()


def test_online_loss_is_prequential_each_sample_scored_before_it_is_learned():
    x, y = regression_data(30)
    model = Spy()
    record = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        stream_of(x, y),
        loss=mse,
        regime=Online(),
        budget=Budget(steps=1000),
    )
    assert record.updates == 30 and record.stop_reason == "exhausted"

    replay = Spy()
    optimizer = torch.optim.SGD(replay.parameters(), lr=0.05)
    expected = []
    for xi, yi in zip(x, y):
        optimizer.zero_grad()
        loss = mse(replay(xi.unsqueeze(0)), yi.unsqueeze(0))  # test with the current model...
        expected.append(loss.item())
        loss.backward()
        optimizer.step()  # ...then train on the same sample
    assert record.train_loss == expected
    assert record.prequential_loss == pytest.approx(sum(expected) / 30, rel=1e-12)


def test_online_reads_an_unbounded_stream_and_stops_by_samples_or_time():
    def unbounded():
        g = torch.Generator().manual_seed(0)
        for _ in itertools.count():
            xi = torch.randn(3, generator=g, dtype=torch.float64)
            yield xi, xi.sum()

    model = Spy()
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.01),
        unbounded(),
        loss=mse,
        regime=Online(),
        budget=Budget(samples=123),
    )
    assert (record.updates, record.samples_seen, record.stop_reason) == (123, 123, "samples")

    model = Spy()
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.01),
        unbounded(),
        loss=mse,
        regime=Online(),
        budget=Budget(seconds=0.05),
    )
    assert record.stop_reason == "seconds" and record.training_seconds >= 0.05 and record.updates > 0


def test_streams_work_online_only_and_epochs_need_a_data_set():
    x, y = regression_data(10)
    model = Spy()
    with pytest.raises(ValueError, match="online only"):
        fit(
            model,
            Recorder(model.parameters()),
            stream_of(x, y),
            loss=mse,
            regime=MiniBatch(4),
            budget=Budget(steps=3),
        )
    with pytest.raises(ValueError, match="epochs needs a finite data set"):
        fit(
            model,
            Recorder(model.parameters()),
            stream_of(x, y),
            loss=mse,
            regime=Online(),
            budget=Budget(epochs=1),
        )
    optimizer = Recorder(model.parameters())
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with pytest.raises(ValueError, match="scheduler_interval is 'epoch', but a stream has no epochs"):
        fit(
            model,
            optimizer,
            stream_of(x, y),
            loss=mse,
            regime=Online(),
            budget=Budget(steps=3),
            scheduler=schedule,
            scheduler_interval="epoch",
        )


# -- optimizers, schedulers, user models --------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: DescentAdam(p, lr=0.05),
        lambda p: torch.optim.Adam(p, lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01),
    ],
    ids=["descentlab.Adam", "torch.Adam", "torch.SGD", "torch.RMSprop"],
)
def test_any_optimizer_trains_a_user_classifier(make):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    record = fit(
        model,
        make(model.parameters()),
        (x, y),
        loss=torch.nn.functional.cross_entropy,
        held_out=(x, y),
        accuracy=accuracy,
        budget=Budget(epochs=10),
    )
    assert record.final_accuracy >= 0.95
    assert record.held_out.step[0] == 0 and len(record.held_out.step) == 11  # initial + every epoch


def test_lbfgs_gets_a_closure_and_solves_least_squares_in_full_batch():
    x, y = regression_data(100)
    model = Spy()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20, history_size=10)
    record = fit(
        model, optimizer, (x, y), loss=mse, regime=FullBatch(30), budget=Budget(steps=3), held_out=(x, y)
    )
    solution = torch.linalg.lstsq(torch.cat([x, torch.ones(100, 1, dtype=x.dtype)], 1), y).solution
    assert torch.allclose(model.linear.weight[0], solution[:3], atol=1e-8)
    assert record.final_held_out_loss == pytest.approx(
        mse(x @ solution[:3] + solution[3], y).item(), rel=1e-9
    )


def test_scheduler_stepped_per_update_and_recorded_lr_is_the_one_in_effect():
    x, y = regression_data(40)
    model = Spy()
    optimizer = DescentSGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    record = fit(
        model, optimizer, (x, y), loss=mse, regime=MiniBatch(10), budget=Budget(steps=7), scheduler=scheduler
    )
    assert record.lr == [0.1] * 3 + [0.05] * 3 + [0.025]


def test_scheduler_stepped_per_epoch():
    x, y = regression_data(40)
    model = Spy()
    optimizer = DescentSGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    record = fit(
        model,
        optimizer,
        (x, y),
        loss=mse,
        regime=MiniBatch(10),
        budget=Budget(epochs=3),
        scheduler=scheduler,
        scheduler_interval="epoch",
    )
    assert record.lr == [0.1] * 4 + [0.05] * 4 + [0.025] * 4


def test_reduce_lr_on_plateau_gets_the_mean_training_loss():
    x, y = regression_data(40)
    model = Spy()
    optimizer = DescentSGD(model.parameters(), lr=1e-6)  # almost no progress: a plateau
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    record = fit(
        model,
        optimizer,
        (x, y),
        loss=mse,
        regime=MiniBatch(10),
        budget=Budget(epochs=3),
        scheduler=scheduler,
        scheduler_interval="epoch",
    )
    # Epoch 1 sets the best loss, epoch 2 does not beat it: the third runs at half the rate.
    assert record.lr == [1e-6] * 8 + [5e-7] * 4


def test_held_out_evaluation_at_intervals_and_at_the_end():
    x, y = regression_data(50)
    model = Spy()
    record = fit(
        model,
        Recorder(model.parameters(), lr=0.01),
        (x, y),
        loss=mse,
        held_out=(x, y),
        regime=MiniBatch(10),
        budget=Budget(steps=12),
        eval_every=Every(5),
    )
    assert record.held_out.step == [0, 5, 10, 12]
    assert record.held_out.samples == [0, 50, 100, 120]
    assert record.held_out.accuracy == [None] * 4


def test_dropout_is_seeded_and_the_callers_generators_are_untouched():
    x, y = regression_data(64)

    def train(seed):
        torch.manual_seed(123)  # the same initialisation for both; then the loop must not use this
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 32, dtype=torch.float64),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(32, 1, dtype=torch.float64),
        )
        states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
        record = fit(
            model,
            DescentAdam(model.parameters(), lr=1e-2),
            (x, y.unsqueeze(1)),
            loss=mse,
            budget=Budget(epochs=2),
            seed=seed,
        )
        assert torch.equal(torch.random.get_rng_state(), states[0])
        assert np.array_equal(np.random.get_state()[1], states[1][1]) and random.getstate() == states[2]
        return record.train_loss

    assert train(0) == train(0)
    assert train(0) != train(1)


# -- divergence and non-finite gradients ------------------------------------------------------


def test_divergence_ends_the_run_as_data_and_a_sweep_carries_on():
    x, y = regression_data(50)
    outcomes = {}
    for lr in (0.01, 1e3, 0.1):
        model = Spy()
        record = fit(
            model,
            DescentSGD(model.parameters(), lr=lr),
            (x, y),
            loss=mse,
            regime=FullBatch(),
            budget=Budget(steps=200),
            held_out=(x, y),
        )
        outcomes[lr] = record
    diverged = outcomes[1e3]
    assert diverged.diverged and diverged.stop_reason == "diverged"
    assert diverged.diverged_at == diverged.updates == len(diverged.train_loss) < 200
    assert not np.isfinite(diverged.diverged_loss)
    assert all(np.isfinite(diverged.train_loss))
    assert not outcomes[0.01].diverged and not outcomes[0.1].diverged
    assert outcomes[0.1].updates == 200


class Root(torch.nn.Module):
    """Per-sample loss sqrt(|theta - x|): finite at theta = x, but its gradient there is NaN."""

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))

    def forward(self, x):
        return (self.theta - x).abs().sqrt().squeeze(-1)


def test_skip_nonfinite_skips_the_bad_step_and_the_run_goes_on():
    samples = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)  # the first sits at theta

    def stream():
        return stream_of(samples, torch.zeros(4, dtype=torch.float64))

    def mean_output(output, _):
        return output.mean()

    # Default: the NaN gradient flows into theta, the next loss is NaN, and the run is recorded as diverged.
    model = Root()
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.1),
        stream(),
        loss=mean_output,
        regime=Online(),
        budget=Budget(steps=10),
    )
    assert record.diverged and record.diverged_at == 1 and record.skipped_steps == 0

    # Guarded: that step is skipped, theta keeps its value, and the other samples train it.
    model = Root()
    optimizer = DescentSGD(model.parameters(), lr=0.1, skip_nonfinite=True)
    record = fit(model, optimizer, stream(), loss=mean_output, regime=Online(), budget=Budget(steps=10))
    assert not record.diverged and record.updates == 4 and record.skipped_steps == 1
    assert record.stop_reason == "exhausted"
    assert model.theta.item() > 0


# -- observers --------------------------------------------------------------------------


def test_observers_see_the_initial_model_and_every_interval():
    from descentlab.train import Observer, effective_lr, parameter_path

    x, y = regression_data(40)
    model = Spy()
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.5)
    norms = Observer("norm", lambda s: sum(p.norm() ** 2 for p in s.model.parameters()).sqrt(), Every(2))
    record = fit(
        model,
        optimizer,
        (x, y),
        loss=mse,
        regime=MiniBatch(10),
        budget=Budget(steps=8),
        observers=[parameter_path(), effective_lr(), norms],
    )
    path = record.observations["path"]
    assert path.step == list(range(9)) and len(path.value[0]) == 4
    assert path.value[-1] == torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()
    assert record.observations["norm"].step == [0, 2, 4, 6, 8]
    lrs = record.observations["effective-lr"]
    assert lrs.step == [0, 4, 8]  # every epoch (4 updates), and the initial model
    assert lrs.value[0] == [0.5 / 1e-10] * 5  # torch's Adagrad starts with a zero accumulator
    want = torch.cat(
        [(0.5 / (optimizer.state[p]["sum"].sqrt() + 1e-10)).reshape(-1) for p in model.parameters()]
    )
    assert lrs.value[-1] == pytest.approx(
        torch.quantile(want.double(), torch.tensor([0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)).tolist(),
        rel=1e-12,
    )

    # Without adaptive state the effective learning rate is the learning rate.
    model = Spy()
    record = fit(
        model,
        DescentSGD(model.parameters(), lr=0.3),
        (x, y),
        loss=mse,
        budget=Budget(steps=2),
        observers=[effective_lr()],
    )
    assert record.observations["effective-lr"].value == [[0.3] * 5, [0.3] * 5]


def test_a_configuration_names_an_observer_with_its_interval():
    from descentlab._registry import UnknownNameError
    from descentlab.train import RunConfig, run

    config = RunConfig(
        "quadratic2d-noisy", "sgd", {"lr": 0.01}, batch_size=25, budget=Budget(epochs=3),
        observers=("path@2epochs", "effective-lr@5steps"),
    )  # fmt: skip
    record = run(config)
    assert record.observations["path@2epochs"].step == [0, 8, 12]  # 4 updates an epoch, and the end
    assert record.observations["effective-lr@5steps"].step == [0, 5, 10, 12]
    with pytest.raises(UnknownNameError, match="did you mean 'path'"):
        run(RunConfig("saddle", "sgd", {"lr": 0.1}, budget=Budget(steps=1), observers=("pth@2",)))
    with pytest.raises(ValueError, match="interval"):
        run(RunConfig("saddle", "sgd", {"lr": 0.1}, budget=Budget(steps=1), observers=("path@often",)))


def test_run_builds_the_optimizer_a_factory_gives():
    from descentlab.train import RunConfig, run

    built = []

    def factory(params, hyperparameters):
        built.append(dict(hyperparameters))
        return torch.optim.SGD(params, lr=hyperparameters["lr"], maximize=True)  # ascent: the loss rises

    config = RunConfig("quadratic2d", "not-in-the-registry", {"lr": 0.01}, budget=Budget(steps=5))
    record = run(config, optimizer_factory=factory)
    assert built == [{"lr": 0.01}] and record.config.optimizer == "not-in-the-registry"
    assert record.held_out.loss[-1] > record.held_out.loss[0]
