"""The accelerator's non-finite-loss guard: the state before a step, taken and put back."""

import pytest
import torch
from torch import nn

from srat_sklearn._loss_guard import TrainingSnapshot


@pytest.fixture
def trained():
    """A network with batch norm (buffers, an int64 counter among them) and SGD with
    momentum, before its first step."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    return module, optimizer


def step(module, optimizer):
    optimizer.zero_grad()
    module(torch.randn(8, 3)).sum().backward()
    optimizer.step()


def state_of(module, optimizer):
    return ({name: t.clone() for name, t in module.state_dict().items()},
            {i: {k: v.clone() for k, v in s.items()}
             for i, s in optimizer.state_dict()["state"].items()})


@pytest.mark.parametrize("steps_before", [0, 2])
def test_restore_puts_back_the_state_of_the_last_take(trained, steps_before):
    # Before the first step the optimizer has no state: the step's additions go too.
    module, optimizer = trained
    snapshot = TrainingSnapshot(module, optimizer)
    for _ in range(steps_before):
        step(module, optimizer)
        snapshot.take()
    before = state_of(module, optimizer)
    step(module, optimizer)
    snapshot.restore()
    torch.testing.assert_close(state_of(module, optimizer), before, rtol=0, atol=0)


def test_restore_puts_back_state_tensors_the_step_replaced(trained):
    module, optimizer = trained
    step(module, optimizer)
    snapshot = TrainingSnapshot(module, optimizer)
    param = next(iter(optimizer.state))
    kept = optimizer.state[param]["momentum_buffer"]
    optimizer.state[param]["momentum_buffer"] = torch.full_like(kept, float("nan"))
    optimizer.param_groups[0]["lr"] = 1.0
    snapshot.restore()
    assert optimizer.state[param]["momentum_buffer"] is kept and torch.isfinite(kept).all()
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_take_refills_the_buffers_of_the_takes_before(trained):
    # Allocated again only when the state's layout changes (the optimizer's first step).
    module, optimizer = trained
    snapshot = TrainingSnapshot(module, optimizer)
    step(module, optimizer)
    snapshot.take()
    buffers = list(snapshot._saved)
    step(module, optimizer)
    snapshot.take()
    assert all(new is old for new, old in zip(snapshot._saved, buffers, strict=True))
