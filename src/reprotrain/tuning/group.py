"""Tuning under torchrun: one trial is one process group.

Rank 0 alone talks to the study: it asks for a trial, announces the trial's params to the
other ranks, the whole group trains it with DDP (models/distributed.py), and rank 0
reports each epoch's dev value, decides pruning, shares that decision so every rank stops
at the same epoch, and tells the study the result. A study of N trials on any number of
ranks ends with N trials. The refit of the best trial is announced and trained the same
way; then rank 0 says it is done. The other ranks only follow (`follow`): they never open
the study, write a file or log to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from reprotrain.models import distributed

TRIAL, REFIT, DONE = "trial", "refit", "done"


def _broadcast(value: Any = None) -> Any:
    """Rank 0's `value` on every rank (itself outside torchrun)."""
    if not distributed.active():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def join(device: Any) -> None:
    """Join torchrun's process group before the first announcement (no-op outside it)."""
    distributed.start(device)


def announce(kind: str, overrides: dict[str, Any] | None = None, label: str = "") -> None:
    """Rank 0: what the group trains next (a trial's or the refit's overrides), or DONE."""
    _broadcast((kind, overrides, label))


def share_pruning(pruned: bool) -> bool:
    """Every rank calls this each epoch of a trial: rank 0's decision, for all."""
    return bool(_broadcast(pruned))


def follow(fit: Callable[..., Any]) -> None:
    """Ranks > 0: train every trial and the refit rank 0 announces, in step with it,
    until it announces DONE. `fit(overrides, on_epoch, label)` is the search's fit."""
    while True:
        kind, overrides, label = _broadcast()
        if kind == DONE:
            distributed.stop()
            return

        def on_epoch(row: dict[str, float]) -> None:
            if share_pruning(False):
                raise optuna.TrialPruned(f"pruned at epoch {int(row['epoch'])}")

        try:
            fit(overrides, on_epoch if kind == TRIAL else None, label)
        except optuna.TrialPruned:
            continue
