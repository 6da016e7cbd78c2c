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
from torch import nn

from stages.learn.nets import MLP, Standardize

# Containers whose forward calls their children in registration order.
_IN_ORDER = (nn.Sequential, MLP)
_LAYERS = (nn.Linear, nn.ReLU, nn.Dropout, nn.Identity, Standardize)


@dataclass(frozen=True)
class Plan:
    """The layers in call order and the loss, for a network this module can differentiate."""

    layers: tuple[nn.Module, ...]
    loss_fn: nn.Module


def plan(net: nn.Module, loss_fn: nn.Module) -> Plan | None:
    """A Plan when `net` is a Linear/ReLU/Dropout stack and the loss is supported, else None."""
    if not _supported_loss(loss_fn):
        return None
    layers = _flatten(net)
    if layers is None or not any(isinstance(layer, nn.Linear) for layer in layers):
        return None
    if isinstance(layers[-1], nn.ReLU):
        return None  # an output ReLU would need its own mask before the loss
    return Plan(tuple(layers), loss_fn)


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
    """Forward and backward of one batch; sets `.grad` of every trainable parameter.

    Returns (loss, outputs), detached. The objective differentiated is loss + l1 * sum |W|
    over Linear weights, as in the autograd path. Dropout draws its mask from torch's global
    generator, as nn.Dropout does.
    """
    with torch.no_grad():
        outputs, tape = _forward(plan.layers, features)
        loss, grad = _loss_grad(plan.loss_fn, outputs, targets)
        _backward(tape, grad, l1)
    return loss, outputs


def _forward(
    layers: tuple[nn.Module, ...], hidden: torch.Tensor
) -> tuple[torch.Tensor, list[tuple[nn.Module, torch.Tensor | None]]]:
    """Outputs, and per layer what its backward needs (input, ReLU output or dropout mask)."""
    tape: list[tuple[nn.Module, torch.Tensor | None]] = []
    for layer in layers:
        if isinstance(layer, nn.Linear):
            tape.append((layer, hidden))
            if layer.bias is None:
                hidden = hidden.mm(layer.weight.t())
            else:
                hidden = torch.addmm(layer.bias, hidden, layer.weight.t())  # (B, out)
        elif isinstance(layer, nn.ReLU):
            hidden = hidden.relu()
            tape.append((layer, hidden))
        elif isinstance(layer, nn.Dropout) and layer.training and layer.p > 0:
            keep = 1.0 - layer.p
            mask = torch.empty_like(hidden).bernoulli_(keep).div_(keep) if keep > 0 else None
            hidden = hidden * mask if mask is not None else torch.zeros_like(hidden)
            tape.append((layer, mask))
        elif isinstance(layer, Standardize):
            hidden = layer(hidden)  # fixed statistics: nothing to differentiate
    return hidden, tape


def _loss_grad(
    loss_fn: nn.Module, outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean loss and its gradient with respect to the outputs."""
    if isinstance(loss_fn, nn.MSELoss):
        diff = outputs - targets
        return diff.square().mean(), diff.mul_(2.0 / diff.numel())
    log_probs = outputs.log_softmax(1)  # (B, classes)
    picked = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (B,)
    grad = log_probs.exp_()
    grad.scatter_add_(1, targets.unsqueeze(1), torch.full_like(picked, -1.0).unsqueeze(1))
    if loss_fn.weight is None:
        return -picked.mean(), grad.div_(len(targets))
    row_weights = loss_fn.weight[targets]  # (B,)
    total = row_weights.sum()
    loss = -(picked * row_weights).sum() / total
    return loss, grad.mul_((row_weights / total).unsqueeze(1))


def _backward(
    tape: list[tuple[nn.Module, torch.Tensor | None]], grad: torch.Tensor, l1: float
) -> None:
    first_trainable = _first_trainable(tape)
    for position in range(len(tape) - 1, first_trainable - 1, -1):
        layer, saved = tape[position]
        if isinstance(layer, nn.Linear):
            if layer.weight.requires_grad:
                weight_grad = grad.t().mm(saved)  # (out, in), the weight's own layout
                if l1:
                    weight_grad.add_(layer.weight.sign(), alpha=l1)
                layer.weight.grad = weight_grad
            if layer.bias is not None and layer.bias.requires_grad:
                layer.bias.grad = grad.sum(0)
            if position > first_trainable:
                grad = grad.mm(layer.weight)  # (B, in)
        elif isinstance(layer, nn.ReLU):
            grad = grad * (saved > 0)
        elif saved is None:
            grad = torch.zeros_like(grad)  # dropout with p = 1
        else:
            grad = grad * saved


def _first_trainable(tape: list[tuple[nn.Module, torch.Tensor | None]]) -> int:
    """Position of the first Linear with a trainable parameter: backward stops there."""
    for position, (layer, _) in enumerate(tape):
        if isinstance(layer, nn.Linear) and any(p.requires_grad for p in layer.parameters()):
            return position
    return len(tape)
