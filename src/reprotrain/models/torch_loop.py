"""The torch training loop: batches from in-memory tensors, early stopping, best weights,
learning-rate schedules, a pretrained backbone frozen for the first epochs, per-epoch
checkpoints that resume bit for bit.

Batches are index slices of tensors already in memory (no per-sample DataLoader): one
`randperm` per epoch, one gather per batch; plain autograd and `optimizer.step()` (fused
where torch has a fused kernel); `train.compile` wraps the network in `torch.compile`.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from reprotrain.config import EarlyStoppingParams, OptimParams, ScheduleParams
from reprotrain.models import distributed

log = logging.getLogger(__name__)

EVAL_BATCH = 8192
FUSED_ON = ("cpu", "cuda")  # devices with fused SGD/Adam/AdamW kernels

# score(outputs, targets) -> a higher-is-better number (accuracy, R^2)
ScoreFn = Callable[[torch.Tensor, torch.Tensor], float]
EpochCallback = Callable[[dict[str, float]], None]
# augment(batch, generator) -> batch of the same shape, for training batches only
AugmentFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Split = tuple[torch.Tensor, torch.Tensor]


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

    def restart_patience(self) -> None:
        """Count bad epochs afresh (the best value so far is kept)."""
        self.bad_epochs = 0

    def _better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]


@dataclass(frozen=True)
class Backbone:
    """The pretrained layers of a network (transfer learning and fine-tuning).

    Frozen for the first `freeze_epochs` epochs (no gradients, and their batch-norm
    statistics kept: the modules stay in eval mode), then trained at `lr * lr_factor`.
    Its parameters form the optimizer's second param group from the first epoch on, so the
    optimizer (and a checkpoint of it) has the same shape before and after unfreezing.
    """

    modules: tuple[str, ...]  # names of the modules holding the backbone's state
    freeze_epochs: int = 0
    lr_factor: float = 1.0

    def frozen_at(self, epoch: int) -> bool:
        return epoch <= self.freeze_epochs

    def unfreezes(self, epochs: int) -> bool:
        """Whether training goes on after the frozen epochs."""
        return self.freeze_epochs < epochs


@dataclass
class LoopConfig:
    """Everything about how to train, apart from the network and the data."""

    optim: OptimParams
    stopping: EarlyStoppingParams
    schedule: ScheduleParams
    augment: AugmentFn | None = None
    mixed_precision: bool = False  # bfloat16 autocast; only used on CUDA
    compile: bool = False  # train and score through torch.compile(net); weights stay net's
    progress: str = "off"  # bar | log | off
    label: str = ""  # what this fit is, on its bar and log lines ("seed 1 of 3")
    checkpoint: Path | None = None  # resume from / save to this file every epoch
    fingerprint: str = ""  # a checkpoint made for other params or data is ignored
    loss_scale: float = 1.0  # reported losses in target units (regression)
    backbone: Backbone | None = None  # pretrained layers: frozen first, then their own lr


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = "max epochs reached"
    resumed_from: int = 0


def make_optimizer(
    net: nn.Module, optim: OptimParams, backbone: Backbone | None = None
) -> torch.optim.Optimizer:
    params = net.parameters() if backbone is None else param_groups(net, optim.lr, backbone)
    # fused: one kernel per parameter for the whole update, where torch has one (CPU, CUDA);
    # Adam's for-loop version costs about a third more per batch of a small MLP on a CPU.
    device = next(net.parameters()).device.type
    common: dict[str, Any] = {
        "lr": optim.lr,
        "weight_decay": optim.weight_decay,
        "fused": device in FUSED_ON,
    }
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=optim.momentum, **common)
    if optim.optimizer == "adam":
        return torch.optim.Adam(params, **common)
    return torch.optim.AdamW(params, **common)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleParams, epochs: int) -> Any:
    """A per-epoch LR scheduler, or None."""
    lr = torch.optim.lr_scheduler
    if schedule.kind == "step":
        return lr.StepLR(optimizer, step_size=schedule.step_size, gamma=schedule.gamma)
    if schedule.kind == "cosine":
        return lr.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=schedule.min_lr)
    if schedule.kind == "plateau":
        return lr.ReduceLROnPlateau(
            optimizer, factor=schedule.gamma, patience=schedule.patience, min_lr=schedule.min_lr
        )
    return None


def param_groups(net: nn.Module, lr: float, backbone: Backbone) -> list[dict[str, Any]]:
    """The head at `lr`, then the backbone at `lr * lr_factor` (when it has parameters)."""
    pretrained = {id(p) for name in backbone.modules for p in net.get_submodule(name).parameters()}
    head = [p for p in net.parameters() if id(p) not in pretrained]
    body = [p for p in net.parameters() if id(p) in pretrained]
    groups: list[dict[str, Any]] = [{"params": head}]
    if body:
        groups.append({"params": body, "lr": lr * backbone.lr_factor})
    return groups


def set_frozen(net: nn.Module, backbone: Backbone | None, frozen: bool) -> list[nn.Module]:
    """Switch the backbone's gradients off (or on); return the modules to keep in eval mode."""
    if backbone is None:
        return []
    modules = [net.get_submodule(name) for name in backbone.modules]
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(not frozen)
    return modules if frozen else []


def batches(
    n_rows: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The epoch's shuffled row order, and its index batches covering every row once."""
    order = torch.randperm(n_rows, generator=generator)
    return order, order.split(batch_size)


def l1_penalty(net: nn.Module) -> torch.Tensor:
    """Sum of absolute weights of every layer (biases and norms excluded)."""
    weights = [p.abs().sum() for name, p in net.named_parameters() if name.endswith("weight")]
    return cast(torch.Tensor, sum(weights))


def autograd_step(
    net: nn.Module,
    loss_fn: nn.Module,
    batch_x: torch.Tensor,
    batch_y: torch.Tensor,
    l1: float,
    autocast: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward of one batch through autograd; returns (loss, outputs), detached."""
    if autocast:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outputs = net(batch_x).float()
    else:
        outputs = net(batch_x)
    loss = loss_fn(outputs, batch_y)
    objective = loss + l1 * l1_penalty(net) if l1 else loss
    objective.backward()
    return loss.detach(), outputs.detach()


def train_epoch(
    net: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Split,
    loop: LoopConfig,
    generator: torch.Generator,
    frozen: list[nn.Module] | None = None,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """One pass over the training tensors; `frozen` modules stay in eval mode.

    Returns the mean loss and the epoch's outputs with their targets (in batch order), so
    the running train score costs no extra forward pass.
    """
    features, targets = data
    optim = loop.optim
    autocast = loop.mixed_precision and features.device.type == "cuda"
    net.train()
    for module in frozen or []:
        module.eval()  # a frozen batch norm keeps its running statistics
    optimizer.zero_grad(set_to_none=True)
    order, indices = batches(len(features), optim.batch_size, generator)
    augment_generator = generator
    if distributed.active():
        order, indices, augment_generator = _rank_share(indices, generator, loop)
    # The targets are small: gathered once per epoch in batch order, sliced per batch.
    targets_seen = targets.index_select(0, order)
    # The epoch's outputs fill one tensor: a small tensor kept per batch would fragment the
    # heap the (larger, short-lived) batches are taken from, and grow the process by more
    # than the outputs themselves.
    losses, outputs_seen, start = [], None, 0
    batch_targets = targets_seen.split([len(index) for index in indices])
    for index, batch_y in zip(indices, batch_targets, strict=True):
        # index_select copies whole rows; advanced indexing (features[index]) is 3-5x slower
        batch_x = features.index_select(0, index)
        if loop.augment is not None:
            batch_x = loop.augment(batch_x, augment_generator)
        optimizer.zero_grad(set_to_none=True)
        loss, outputs = autograd_step(net, loss_fn, batch_x, batch_y, optim.l1, autocast)
        if optim.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), optim.grad_clip)
        optimizer.step()
        losses.append(loss)
        if outputs_seen is None:
            outputs_seen = outputs.new_empty((len(order), *outputs.shape[1:]))
        outputs_seen[start : start + len(index)] = outputs
        start += len(index)
    # Batch losses are means: weight each by its batch size (the last batch may be short).
    sizes = torch.tensor([len(index) for index in indices], device=features.device)
    loss_sum, rows = distributed.total(float((torch.stack(losses) * sizes).sum()), len(order))
    mean_loss = loss_sum / rows
    assert outputs_seen is not None  # an epoch has at least one batch
    return mean_loss, outputs_seen, targets_seen


def _rank_share(
    indices: tuple[torch.Tensor, ...], generator: torch.Generator, loop: LoopConfig
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Generator]:
    """Under torchrun: this rank's rows of every global batch, and its own augmentation
    generator. The shared generator draws the same numbers on every rank (one permutation
    and one seed an epoch), so the ranks stay in step and a resumed run repeats itself; a
    last batch smaller than the number of ranks is left out (each rank needs a row)."""
    world = distributed.world_size()
    mine = tuple(distributed.shard(index) for index in indices if len(index) >= world)
    augment_generator = generator
    if loop.augment is not None:
        seed = int(torch.randint(2**62, (1,), generator=generator))
        augment_generator = torch.Generator().manual_seed(seed + distributed.rank())
    return torch.cat(mine), mine, augment_generator


@torch.no_grad()
def predict_outputs(net: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Network outputs in eval mode, computed in large batches into one tensor (as in
    `train_epoch`: no small tensor per batch left between the batches' temporaries)."""
    net.eval()
    first = net(features[:EVAL_BATCH])
    outputs = first.new_empty((len(features), *first.shape[1:]))
    outputs[: len(first)] = first
    for start in range(EVAL_BATCH, len(features), EVAL_BATCH):
        outputs[start : start + EVAL_BATCH] = net(features[start : start + EVAL_BATCH])
    return outputs


def evaluate(
    net: nn.Module, loss_fn: nn.Module, score_fn: ScoreFn, data: Split
) -> tuple[float, float]:
    """(loss, score) of the network on one split."""
    outputs = predict_outputs(net, data[0])
    return float(loss_fn(outputs, data[1])), score_fn(outputs, data[1])


class Progress:
    """A tqdm bar on a terminal, one log line per epoch elsewhere (e.g. under dvc in CI);
    both say which fit they belong to (`label`). An early stop closes the bar at its epoch."""

    def __init__(self, mode: str, total: int, start: int, label: str = ""):
        self.mode, self.label = mode, label
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=start, unit="epoch", desc=label or None, file=sys.stderr
            )

    def update(self, row: dict[str, float], lr: float) -> None:
        summary = {k: f"{v:.4g}" for k, v in row.items() if k != "epoch"}
        if self.bar is not None:
            self.bar.set_postfix(summary, refresh=False)
            self.bar.update(1)
        elif self.mode == "log":
            fields = " ".join(f"{k}={v}" for k, v in summary.items())
            prefix = f"{self.label}: " if self.label else ""
            log.info("%sepoch %d: %s lr=%.3g", prefix, row["epoch"], fields, lr)

    def close(self, reason: str = "") -> None:
        """End the bar where training ended: a bar stopped early shows 100% and why."""
        if self.bar is None:
            return
        if self.bar.n < (self.bar.total or 0):
            self.bar.total = self.bar.n
            self.bar.set_description(f"{self.label} ({reason})" if self.label else reason)
        self.bar.close()


@dataclass
class _State:
    """What a checkpoint holds: enough to continue exactly where training stopped."""

    epoch: int
    best_state: dict[str, Any]
    history: list[dict[str, float]]
    done: bool = False
    reason: str = "max epochs reached"
    frozen: bool = False  # the backbone's state in the last epoch


def _save_checkpoint(
    path: Path,
    loop: LoopConfig,
    state: _State,
    net,
    optimizer,
    scheduler,
    stopper: EarlyStopping,
    generator: torch.Generator,
) -> None:
    from reprotrain.data.io import atomic_path

    payload = {
        "fingerprint": loop.fingerprint,
        "epoch": state.epoch,
        "done": state.done,
        "reason": state.reason,
        "history": state.history,
        "net": net.state_dict(),
        "best_state": state.best_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "stopper": stopper.state_dict(),
        "backbone_frozen": state.frozen,
        "rng_generator": generator.get_state(),
        "rng_torch": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is only ignored
        log.warning("ignoring unreadable checkpoint %s (%s)", path, type(exc).__name__)
        return None
    if payload.get("fingerprint") != fingerprint:
        log.info("ignoring checkpoint %s: made for other params or data", path)
        return None
    return payload


def _freeze_for(
    epoch: int, net: nn.Module, loop: LoopConfig, state: _State, stopper: EarlyStopping
) -> list[nn.Module]:
    """Freeze or unfreeze the backbone for this epoch; the modules to keep in eval mode."""
    if loop.backbone is None:
        return []
    frozen = loop.backbone.frozen_at(epoch)
    if state.frozen and not frozen:
        stopper.restart_patience()  # the whole network trains from here on
        log.info("epoch %d: backbone unfrozen (lr x %g)", epoch, loop.backbone.lr_factor)
    state.frozen = frozen
    return set_frozen(net, loop.backbone, frozen)


def _forward(net: nn.Module, loop: LoopConfig) -> nn.Module:
    """What trains and scores: net, under torchrun in DDP, compiled if asked. Both share
    net's parameters: the optimizer, state dicts and checkpoints keep using net itself."""
    forward = distributed.wrap(net)
    return cast(nn.Module, torch.compile(forward)) if loop.compile else forward


def _train_score(score_fn: ScoreFn, outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The epoch's running train score; under torchrun the ranks' scores weighted by their
    rows (exact for accuracy, close for R^2)."""
    score = score_fn(outputs, targets)
    if not distributed.active():
        return score
    weighted, rows = distributed.total(score * len(targets), len(targets))
    return weighted / rows


def fit(
    net: nn.Module,
    loss_fn: nn.Module,
    score_fn: ScoreFn,
    train: Split,
    dev: Split,
    loop: LoopConfig,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train `net` in place; it ends holding the weights of its best dev epoch."""
    optim = loop.optim
    optimizer = make_optimizer(net, optim, loop.backbone)
    scheduler = make_scheduler(optimizer, loop.schedule, optim.epochs)
    mode = "min" if loop.stopping.monitor == "dev_loss" else "max"
    stopper = EarlyStopping(mode, loop.stopping.patience, loop.stopping.min_delta)
    state = _State(epoch=0, best_state=copy.deepcopy(net.state_dict()), history=[])

    saved = _load_checkpoint(loop.checkpoint, loop.fingerprint)
    if saved is not None:
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        stopper.load_state_dict(saved["stopper"])
        generator.set_state(saved["rng_generator"])
        torch.set_rng_state(saved["rng_torch"])
        state = _State(
            saved["epoch"],
            saved["best_state"],
            saved["history"],
            saved["done"],
            saved["reason"],
            saved.get("backbone_frozen", False),
        )
        log.info("resuming from checkpoint %s at epoch %d", loop.checkpoint, state.epoch)
    resumed_from = state.epoch

    progress = Progress(loop.progress, optim.epochs, state.epoch, loop.label)
    forward, built_for = net, None
    for epoch in range(state.epoch + 1, optim.epochs + 1):
        if state.done:
            break
        frozen = _freeze_for(epoch, net, loop, state, stopper)
        if built_for != state.frozen:  # DDP registers the parameters that train
            forward, built_for = _forward(net, loop), state.frozen
        train_loss, outputs, targets = train_epoch(
            forward, loss_fn, optimizer, train, loop, generator, frozen
        )
        dev_loss, dev_score = evaluate(forward, loss_fn, score_fn, dev)
        row = {
            "epoch": epoch,
            "train_loss": train_loss * loop.loss_scale,
            "train_score": _train_score(score_fn, outputs, targets),
            "dev_loss": dev_loss * loop.loss_scale,
            "dev_score": dev_score,
        }
        state.history.append(row)
        state.epoch = epoch
        if on_epoch is not None:
            on_epoch(row)
        improved, should_stop, reason = stopper.step(epoch, row[loop.stopping.monitor])
        unfreezes = loop.backbone is not None and loop.backbone.unfreezes(optim.epochs)
        if should_stop and state.frozen and unfreezes:
            should_stop = False  # the unfrozen epochs still to come get their own patience
        should_stop = distributed.any_rank(should_stop)  # the ranks stop together
        if improved:
            state.best_state = copy.deepcopy(net.state_dict())
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(dev_loss)
        elif scheduler is not None:
            scheduler.step()
        progress.update(row, optimizer.param_groups[0]["lr"])
        if should_stop:
            state.done, state.reason = True, f"early stop at epoch {epoch}: {reason}"
        if loop.checkpoint is not None and distributed.is_main():
            _save_checkpoint(
                loop.checkpoint, loop, state, net, optimizer, scheduler, stopper, generator
            )
    progress.close(state.reason.split(":")[0])

    set_frozen(net, loop.backbone, False)
    net.load_state_dict(state.best_state)
    result = FitResult(state.history, stopper.best_epoch, state.reason, resumed_from)
    prefix = f"{loop.label}: " if loop.label else ""
    log.info(
        "%sbest epoch %d of %d (%s)",
        prefix,
        result.best_epoch,
        len(result.history),
        result.stop_reason,
    )
    return result
