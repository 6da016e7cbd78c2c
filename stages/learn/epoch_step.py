"""`optimizer.step()` prepared once per epoch: the hand-gradient path's optimizer update.

On a CPU, `optimizer.step()` spends about 30 us per call outside the update itself (a
profiler record, hooks, and lists of parameters, gradients and state rebuilt from
`optimizer.state`): as long as the fused update of a small MLP. On the hand-gradient path
(`stages/learn/handgrad.py`) every batch writes its gradients into the same `.grad`
tensors, so after one ordinary `optimizer.step()` has created the optimizer's state, those
lists stay the same for the rest of the epoch. `prepare()` builds them once and returns a
call of torch's own functional update (`torch.optim.sgd.sgd`, `torch.optim.adam.adam`,
which is also AdamW's) on the optimizer's hyperparameters and state tensors, which it
updates in place, so checkpoints and schedules see the state as `optimizer.step()` leaves it.
Learning-rate schedules step between epochs, so the hyperparameters are fixed within one.

`tests/test_epoch_step.py` checks parameters and optimizer state against `optimizer.step()`
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

Step = Callable[[], None]


def prepare(optimizer: torch.optim.Optimizer) -> Step | None:
    """A step equal to `optimizer.step()` while the gradient tensors stay the same (the rest
    of an epoch on the hand-gradient path), or None where this module does not know the
    optimizer or its state is not created yet (call `optimizer.step()` first)."""
    kind = type(optimizer)
    if kind not in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        return None
    if getattr(optimizer, "grad_scale", None) is not None:
        return None  # gradient scaling (AMP's GradScaler): left to optimizer.step()
    calls = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        states = [optimizer.state.get(p) for p in params]
        if (kind is not torch.optim.SGD or group["momentum"]) and not all(states):
            return None  # no state yet: optimizer.step() creates it
        calls.append((_sgd if kind is torch.optim.SGD else _adam)(group, params, states))
    return partial(_run, calls)


def _run(calls: list[Step]) -> None:
    with torch.no_grad():  # as optimizer.step(): updates in place, recorded by no graph
        for call in calls:
            call()


def _sgd(group: dict[str, Any], params: list[torch.Tensor], states: list[Any]) -> Step:
    # as SGD.step: no buffer list at all without momentum
    buffers = [state["momentum_buffer"] for state in states] if group["momentum"] else []
    return partial(
        sgd,
        params,
        [p.grad for p in params],
        buffers,
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        lr=group["lr"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        maximize=group["maximize"],
        foreach=group["foreach"],
        fused=group["fused"],
    )


def _adam(group: dict[str, Any], params: list[torch.Tensor], states: list[Any]) -> Step:
    beta1, beta2 = group["betas"]
    return partial(
        adam,
        params,
        [p.grad for p in params],
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [state["max_exp_avg_sq"] for state in states] if group["amsgrad"] else [],
        [state["step"] for state in states],
        foreach=group["foreach"],
        capturable=group["capturable"],
        differentiable=group["differentiable"],
        fused=group["fused"],
        has_complex=any(torch.is_complex(p) for p in params),
        decoupled_weight_decay=group["decoupled_weight_decay"],
        amsgrad=group["amsgrad"],
        beta1=beta1,
        beta2=beta2,
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
    )
