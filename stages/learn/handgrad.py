"""Gradients of a plain MLP by hand: the training loop's fast path at small batches.

On a CPU at batch 64, eager autograd's per-op bookkeeping (graph nodes, gradient layout
copies, accumulation) costs more than the matmuls of a small MLP. For a stack of Linear,
ReLU and Dropout layers the backward pass is three matmuls per layer, so the loop computes
it directly when the network is such a stack and the loss is cross-entropy or MSE, and
autograd does everything else (`plan()` returns None). Only the gradients are computed
here: the optimizer, gradient clipping, schedules and checkpoints are the loop's, as before.

`tests/test_handgrad.py` checks loss and gradients against autograd's, dropout included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

from stages.learn.nets import MLP, Standardize

# Containers whose forward calls their children in registration order.
_IN_ORDER = (nn.Sequential, MLP)
_LAYERS = (nn.Linear, nn.ReLU, nn.Dropout, nn.Identity, Standardize)


@dataclass(frozen=True)
class Plan:
    """The layers in call order and the loss, for a network this module can differentiate.

    Made per epoch (`training.train_epoch`), so `first_trainable` follows layers frozen for
    the first epochs of fine-tuning: backward stops at that layer.
    """

    layers: tuple[nn.Module, ...]
    loss_fn: nn.Module
    first_trainable: int
    # (weight, bias) of each Linear in `layers`, None for the other layers: looked up once
    # per epoch, not through nn.Module's attribute lookup on every batch.
    linears: tuple[tuple[nn.Parameter, nn.Parameter | None] | None, ...]


def plan(net: nn.Module, loss_fn: nn.Module) -> Plan | None:
    """A Plan when `net` is a Linear/ReLU/Dropout stack and the loss is supported, else None."""
    if not _supported_loss(loss_fn):
        return None
    layers = _flatten(net)
    if layers is None or not any(isinstance(layer, nn.Linear) for layer in layers):
        return None
    if isinstance(layers[-1], nn.ReLU):
        return None  # an output ReLU would need its own mask before the loss
    first_linear = next(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    if any(isinstance(layer, Standardize) for layer in layers[first_linear:]):
        return None  # backward passes through a Standardize only before the first Linear
    linears = tuple(
        (layer.weight, layer.bias) if isinstance(layer, nn.Linear) else None for layer in layers
    )
    return Plan(tuple(layers), loss_fn, _first_trainable(layers), linears)


def _supported_loss(loss_fn: nn.Module) -> bool:
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        return loss_fn.reduction == "mean" and loss_fn.label_smoothing == 0.0
    return type(loss_fn) is nn.MSELoss and loss_fn.reduction == "mean"


def _flatten(module: nn.Module) -> list[nn.Module] | None:
    if isinstance(module, _LAYERS):
        return [module]
    if type(module) not in _IN_ORDER:
        return None
    layers: list[nn.Module] = []
    for child in module.children():
        inner = _flatten(child)
        if inner is None:
            return None
        layers += inner
    return layers


def loss_and_grads(
    plan: Plan, features: torch.Tensor, targets: torch.Tensor, l1: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward of one batch; overwrites `.grad` of every trainable parameter
    (no zero_grad needed), and leaves the others' as they are.

    Returns (loss, outputs), detached. The objective differentiated is loss + l1 * sum |W|
    over Linear weights, as in the autograd path. Dropout draws its mask from torch's global
    generator, as nn.Dropout does.
    """
    with torch.no_grad():
        outputs, tape = _forward(plan, features)
        loss, grad = _loss_grad(plan.loss_fn, outputs, targets)
        _backward(tape, grad, l1, plan.first_trainable)
    return loss, outputs


# Per layer, what its backward needs: the Linear's (weight, bias) and its input, the ReLU's
# output, the dropout's scaled mask, or nothing.
Tape = list[tuple[nn.Module, tuple[nn.Parameter, nn.Parameter | None] | None, torch.Tensor | None]]


def _forward(plan: Plan, hidden: torch.Tensor) -> tuple[torch.Tensor, Tape]:
    """Outputs, and the tape the backward pass reads."""
    tape: Tape = []
    after_linear = False
    for layer, linear in zip(plan.layers, plan.linears, strict=True):
        if linear is not None:
            tape.append((layer, linear, hidden))
            hidden = F.linear(hidden, *linear)  # (B, out)
        elif isinstance(layer, nn.ReLU):
            # in place on a Linear's output, which nothing else keeps
            hidden = hidden.relu_() if after_linear else hidden.relu()
            tape.append((layer, None, hidden))
        elif isinstance(layer, nn.Dropout) and layer.training and layer.p > 0:
            keep = 1.0 - layer.p
            if keep > 0:
                mask = torch.empty_like(hidden).bernoulli_(keep).div_(keep)
            else:
                mask = torch.zeros_like(hidden)
            hidden = hidden * mask
            tape.append((layer, None, mask))
        else:
            if isinstance(layer, Standardize):
                hidden = layer(hidden)  # fixed statistics, before any trainable layer
            tape.append((layer, None, None))  # Identity, or Dropout in eval mode / with p = 0
        after_linear = linear is not None
    return hidden, tape


def _loss_grad(
    loss_fn: nn.Module, outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean loss and its gradient with respect to the outputs."""
    if isinstance(loss_fn, nn.MSELoss):
        diff = outputs - targets
        return diff.square().mean(), diff.mul_(2.0 / diff.numel())
    # d(cross-entropy)/d(outputs) = softmax - one-hot, per row, times the row's share of the
    # (weighted) mean.
    log_probs = outputs.log_softmax(1)  # (B, classes)
    loss = F.nll_loss(log_probs, targets, weight=loss_fn.weight)
    grad = log_probs.exp_().scatter_(1, targets.unsqueeze(1), -1.0, reduce="add")
    if loss_fn.weight is None:
        return loss, grad.div_(targets.shape[0])
    row_weights = loss_fn.weight[targets]  # (B,)
    return loss, grad.mul_((row_weights / row_weights.sum()).unsqueeze(1))


def _backward(tape: Tape, grad: torch.Tensor, l1: float, first_trainable: int) -> None:
    for position in range(len(tape) - 1, first_trainable - 1, -1):
        layer, linear, saved = tape[position]
        if linear is not None:
            weight, bias = linear
            if weight.requires_grad:
                _write_grad(weight, torch.mm, grad.t(), saved)  # (out, in): the weight's layout
                if l1:
                    weight.grad.add_(weight.sign(), alpha=l1)
            if bias is not None and bias.requires_grad:
                _write_grad(bias, torch.sum, grad, 0)
            if position > first_trainable:
                grad = grad.mm(weight)  # (B, in)
        elif isinstance(layer, nn.ReLU):
            grad = torch.ops.aten.threshold_backward(grad, saved, 0.0)  # 0 where ReLU was off
        elif saved is not None:  # Dropout's scaled mask
            grad = grad * saved


def _write_grad(param: nn.Parameter, op, *args) -> None:
    """param.grad = op(*args), into the existing gradient tensor when there is one: the loop
    skips zero_grad on this path, and a fresh (out, in) tensor per step costs an allocation."""
    if param.grad is None:
        param.grad = op(*args)
    else:
        op(*args, out=param.grad)


def _first_trainable(layers: list[nn.Module]) -> int:
    """Position of the first Linear with a trainable parameter: backward stops there."""
    for position, layer in enumerate(layers):
        if isinstance(layer, nn.Linear) and any(p.requires_grad for p in layer.parameters()):
            return position
    return len(layers)
