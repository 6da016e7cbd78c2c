"""The torch training loop: batches from in-memory tensors, early stopping, best weights.

Batches are index slices of tensors already in memory (no per-sample DataLoader): one
`randperm` per epoch, one gather per batch.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from stages.config import EarlyStoppingParams, OptimParams

log = logging.getLogger(__name__)

EVAL_BATCH = 8192

# score(outputs, targets) -> a higher-is-better number (accuracy, R^2)
ScoreFn = Callable[[torch.Tensor, torch.Tensor], float]
EpochCallback = Callable[[dict[str, float]], None]


class EarlyStopping:
    """Decides when to stop; the loop acts on the decision."""

    def __init__(self, mode: str, patience: int, min_delta: float):
        self.mode, self.patience, self.min_delta = mode, patience, min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def step(self, epoch: int, value: float) -> tuple[bool, bool, str]:
        """Record one epoch's value; return (improved, should_stop, reason)."""
        if self.best is None or self._better(value, self.best):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True, False, "improved"
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            reason = f"no improvement over {self.best:.6g} for {self.patience} epochs"
            return False, True, reason
        return False, False, "no improvement"

    def _better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = "max epochs reached"


def make_optimizer(net: nn.Module, optim: OptimParams) -> torch.optim.Optimizer:
    params = net.parameters()
    if optim.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    if optim.optimizer == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)


def batches(n_rows: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering every row once."""
    order = torch.randperm(n_rows, generator=generator)
    yield from order.split(batch_size)


def l1_penalty(net: nn.Module) -> torch.Tensor:
    """Sum of absolute weights of every layer (biases excluded)."""
    return sum(p.abs().sum() for name, p in net.named_parameters() if name.endswith("weight"))


def train_epoch(
    net: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    optim: OptimParams,
    generator: torch.Generator,
) -> float:
    """One pass over the training tensors; returns the mean training loss."""
    features, targets = data
    net.train()
    total, seen = torch.zeros(()), 0
    for index in batches(len(features), optim.batch_size, generator):
        batch_x, batch_y = features[index], targets[index]
        loss = loss_fn(net(batch_x), batch_y)
        objective = loss + optim.l1 * l1_penalty(net) if optim.l1 else loss
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if optim.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), optim.grad_clip)
        optimizer.step()
        total += loss.detach() * len(index)
        seen += len(index)
    return float(total) / seen


@torch.no_grad()
def predict_outputs(net: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Network outputs in eval mode, computed in large batches."""
    net.eval()
    return torch.cat([net(chunk) for chunk in features.split(EVAL_BATCH)])


def evaluate(
    net: nn.Module,
    loss_fn: nn.Module,
    score_fn: ScoreFn,
    data: tuple[torch.Tensor, torch.Tensor],
) -> tuple[float, float]:
    """(loss, score) of the network on one split."""
    outputs = predict_outputs(net, data[0])
    return float(loss_fn(outputs, data[1])), score_fn(outputs, data[1])


def fit(
    net: nn.Module,
    loss_fn: nn.Module,
    score_fn: ScoreFn,
    train: tuple[torch.Tensor, torch.Tensor],
    dev: tuple[torch.Tensor, torch.Tensor],
    optim: OptimParams,
    stopping: EarlyStoppingParams,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
    loss_scale: float = 1.0,
) -> FitResult:
    """Train `net` in place; it ends holding the weights of its best dev epoch.

    `loss_scale` converts reported losses to the target's units (regression targets are
    standardized for training).
    """
    optimizer = make_optimizer(net, optim)
    mode = "min" if stopping.monitor == "dev_loss" else "max"
    stopper = EarlyStopping(mode, stopping.patience, stopping.min_delta)
    best_state = copy.deepcopy(net.state_dict())
    result = FitResult()
    for epoch in range(1, optim.epochs + 1):
        train_loss = train_epoch(net, loss_fn, optimizer, train, optim, generator)
        train_score = evaluate(net, loss_fn, score_fn, train)[1]
        dev_loss, dev_score = evaluate(net, loss_fn, score_fn, dev)
        row = {
            "epoch": epoch,
            "train_loss": train_loss * loss_scale,
            "train_score": train_score,
            "dev_loss": dev_loss * loss_scale,
            "dev_score": dev_score,
        }
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        improved, should_stop, reason = stopper.step(epoch, row[stopping.monitor])
        if improved:
            best_state = copy.deepcopy(net.state_dict())
        if should_stop:
            result.stop_reason = f"early stop at epoch {epoch}: {reason}"
            break
    net.load_state_dict(best_state)
    result.best_epoch = stopper.best_epoch
    log.info("best epoch %d of %d (%s)", result.best_epoch, len(result.history), result.stop_reason)
    return result
