"""epoch_step.prepare: the same parameters and optimizer state as optimizer.step(), bit for bit."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from stages.core.config import EarlyStoppingParams, OptimParams, ScheduleParams
from stages.learn import epoch_step, training

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd no momentum": lambda params: torch.optim.SGD(params, lr=0.05),
    "sgd nesterov, not fused": lambda params: torch.optim.SGD(
        params, lr=0.05, momentum=0.8, nesterov=True, fused=False
    ),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=1e-3, fused=True),
    "adam amsgrad, for-loop": lambda params: torch.optim.Adam(
        params, lr=0.01, amsgrad=True, foreach=False
    ),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1, fused=True),
}


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def _run(make, prepared: bool, steps: int = 6) -> tuple[list[torch.Tensor], dict]:
    """`steps` updates with fixed gradients written in place, as the hand path does; the
    second layer in its own param group (another lr), the first layer's bias frozen."""
    net = _net()
    net[0].bias.requires_grad_(False)
    groups = [
        {"params": [net[0].weight]},
        {"params": list(net[2].parameters()), "lr": 0.003},
    ]
    optimizer = make(groups)
    generator = torch.Generator().manual_seed(1)
    step = optimizer.step
    for position in range(steps):
        for param in (net[0].weight, *net[2].parameters()):
            grad = torch.randn(param.shape, generator=generator)
            if param.grad is None:
                param.grad = grad
            else:
                param.grad.copy_(grad)
        step()
        if prepared and position == 0:
            step = epoch_step.prepare(optimizer)
            assert step is not None
    return [p.detach().clone() for p in net.parameters()], optimizer.state_dict()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_prepared_step_matches_optimizer_step(name: str) -> None:
    want_params, want_state = _run(OPTIMIZERS[name], prepared=False)
    got_params, got_state = _run(OPTIMIZERS[name], prepared=True)
    for got, want in zip(got_params, want_params, strict=True):
        assert torch.equal(got, want)
    assert got_state["param_groups"] == want_state["param_groups"]
    assert got_state["state"].keys() == want_state["state"].keys()
    for index, want in want_state["state"].items():
        for key, value in want.items():
            assert torch.equal(got_state["state"][index][key], value), (index, key)


def test_not_prepared_before_the_state_exists_or_for_other_optimizers() -> None:
    net = _net()
    for param in net.parameters():
        param.grad = torch.ones_like(param)
    adam = torch.optim.Adam(net.parameters())
    assert epoch_step.prepare(adam) is None  # no state before the first step
    adam.step()
    assert epoch_step.prepare(adam) is not None
    assert epoch_step.prepare(torch.optim.RMSprop(net.parameters())) is None


def _three_epochs(features: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
    """Three epochs of the hand-gradient loop with SGD and a cosine schedule; warnings fail."""
    net = _net()
    optim = OptimParams(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=16)
    loop = training.LoopConfig(optim=optim, stopping=EarlyStoppingParams())
    optimizer = training.make_optimizer(net, optim)
    scheduler = training.make_scheduler(optimizer, ScheduleParams(kind="cosine"), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for _ in range(3):
            generator = torch.Generator().manual_seed(0)
            data = (features, targets)
            training.train_epoch(net, nn.CrossEntropyLoss(), optimizer, data, loop, generator)
            scheduler.step()
    return [p.detach().clone() for p in net.parameters()]


def test_hand_path_epochs_match_optimizer_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's prepared steps give the weights optimizer.step() gives on every batch,
    with the lr changing between epochs."""
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(200, 6, generator=generator)
    targets = torch.randint(0, 3, (200,), generator=generator)
    prepared = _three_epochs(features, targets)
    monkeypatch.setattr(epoch_step, "prepare", lambda optimizer: None)
    every_batch = _three_epochs(features, targets)
    for got, want in zip(prepared, every_batch, strict=True):
        assert torch.equal(got, want)
