"""Hand-written MLP gradients: the same loss and gradients as autograd, or no plan at all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.core.config import EarlyStoppingParams, OptimParams
from stages.learn import handgrad, training
from stages.learn.nets import CNN, MLP, Standardize


def _mlp(dropout: float = 0.0, hidden: tuple[int, ...] = (16, 8), n_outputs: int = 3) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(Standardize(5), MLP(5, n_outputs, list(hidden), dropout))
    net[0].fit(torch.randn(40, 5) * 3 + 1)
    return net


def _batch(regression: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(32, 5, generator=generator)
    if regression:
        return features, torch.randn(32, 1, generator=generator)
    return features, torch.randint(0, 3, (32,), generator=generator)


def _autograd(net: nn.Module, loss_fn: nn.Module, batch, l1: float) -> tuple[float, list]:
    net.zero_grad(set_to_none=True)
    loss, _ = training.autograd_step(net, loss_fn, *batch, l1=l1, autocast=False)
    return float(loss), [p.grad for p in net.parameters()]


def _by_hand(net: nn.Module, loss_fn: nn.Module, batch, l1: float) -> tuple[float, list]:
    net.zero_grad(set_to_none=True)
    plan = handgrad.plan(net, loss_fn)
    assert plan is not None
    loss, _ = handgrad.loss_and_grads(plan, *batch, l1=l1)
    return float(loss), [p.grad for p in net.parameters()]


CASES = [
    ("cross_entropy", nn.CrossEntropyLoss(), False, 0.0, 0.0),
    ("weighted", nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0])), False, 0.0, 0.0),
    ("mse", nn.MSELoss(), True, 0.0, 0.0),
    ("dropout", nn.CrossEntropyLoss(), False, 0.0, 0.4),
    ("l1", nn.CrossEntropyLoss(), False, 0.01, 0.0),
    ("mse_dropout_l1", nn.MSELoss(), True, 0.05, 0.3),
]


@pytest.mark.parametrize(
    ("loss_fn", "regression", "l1", "dropout"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_loss_and_grads_match_autograd(
    loss_fn: nn.Module, regression: bool, l1: float, dropout: float
) -> None:
    net = _mlp(dropout, n_outputs=1 if regression else 3)
    net.train()
    batch = _batch(regression)
    torch.manual_seed(7)  # the same dropout masks on both sides
    expected_loss, expected = _autograd(net, loss_fn, batch, l1)
    torch.manual_seed(7)
    loss, grads = _by_hand(net, loss_fn, batch, l1)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_frozen_layers_get_no_gradient_and_stay_in_eval_mode() -> None:
    net = _mlp(dropout=0.5)
    net.train()
    body = net[1].body
    for param in body[0].parameters():
        param.requires_grad_(False)
    body[2].eval()  # the frozen layer's dropout, as the loop leaves it
    batch = _batch()
    torch.manual_seed(3)
    _, expected = _autograd(net, nn.CrossEntropyLoss(), batch, 0.0)
    torch.manual_seed(3)
    _, grads = _by_hand(net, nn.CrossEntropyLoss(), batch, 0.0)
    assert grads[0] is None and grads[1] is None
    for got, want in zip(grads[2:], expected[2:], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_plain_sequential_without_bias_is_planned() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3))
    batch = _batch()
    _, expected = _autograd(net, nn.CrossEntropyLoss(), batch, 0.0)
    _, grads = _by_hand(net, nn.CrossEntropyLoss(), batch, 0.0)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(5, 5)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows + self.layer(rows)


UNPLANNED = [
    ("cnn", CNN(64, 3, [1, 8, 8], [4], 3, 8, 0.0), nn.CrossEntropyLoss()),
    ("custom_forward", nn.Sequential(_Residual(), nn.Linear(5, 3)), nn.CrossEntropyLoss()),
    ("output_relu", nn.Sequential(nn.Linear(5, 3), nn.ReLU()), nn.CrossEntropyLoss()),
    ("no_linear", nn.Sequential(nn.ReLU()), nn.CrossEntropyLoss()),
    (
        "standardize_after_linear",
        nn.Sequential(nn.Linear(5, 4), Standardize(4), nn.Linear(4, 3)),
        nn.CrossEntropyLoss(),
    ),
    ("label_smoothing", _mlp(), nn.CrossEntropyLoss(label_smoothing=0.1)),
    ("sum_reduction", _mlp(), nn.CrossEntropyLoss(reduction="sum")),
    ("other_loss", _mlp(n_outputs=1), nn.L1Loss()),
]


@pytest.mark.parametrize(
    ("net", "loss_fn"), [case[1:] for case in UNPLANNED], ids=[case[0] for case in UNPLANNED]
)
def test_anything_else_is_left_to_autograd(net: nn.Module, loss_fn: nn.Module) -> None:
    assert handgrad.plan(net, loss_fn) is None


def test_an_epoch_by_hand_ends_where_autograd_ends() -> None:
    """Same seed, SGD with momentum, clipping, L1 and dropout: the weights after an epoch agree."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(200, 5, generator=generator)
    targets = (features[:, 0] > 0).long() + (features[:, 1] > 1).long()
    optim = OptimParams(
        optimizer="sgd", lr=0.05, momentum=0.9, batch_size=16, grad_clip=1.0, l1=0.001
    )
    nets, losses = {}, {}
    for hand_gradients in (True, False):
        net = nets[hand_gradients] = _mlp(dropout=0.2)
        loop = training.LoopConfig(
            optim=optim, stopping=EarlyStoppingParams(), hand_gradients=hand_gradients
        )
        optimizer = training.make_optimizer(net, optim)
        torch.manual_seed(11)
        losses[hand_gradients], outputs, _ = training.train_epoch(
            net,
            nn.CrossEntropyLoss(),
            optimizer,
            (features, targets),
            loop,
            torch.Generator().manual_seed(5),
        )
        assert not outputs.requires_grad
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    for got, want in zip(nets[True].parameters(), nets[False].parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_identity_and_dropout_everything_match_autograd() -> None:
    """An Identity passes gradients through; Dropout(p=1) zeroes them (and the outputs)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Identity(), nn.ReLU(), nn.Dropout(1.0), nn.Linear(4, 3))
    net.train()
    batch = _batch()
    expected_loss, expected = _autograd(net, nn.CrossEntropyLoss(), batch, 0.0)
    loss, grads = _by_hand(net, nn.CrossEntropyLoss(), batch, 0.0)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert not grads[0].any()  # nothing reaches the first layer through the dropped units
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
