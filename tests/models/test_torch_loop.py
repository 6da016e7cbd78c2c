"""The torch loop: early-stopping decisions, best-weight restore, in-memory batches."""

from __future__ import annotations

import pytest
import repo_params
import torch
from torch import nn

from reprotrain.config import OptimParams
from reprotrain.models import torch_loop as training
from reprotrain.models.torch_loop import EarlyStopping


def test_early_stopping_min_mode_decisions() -> None:
    stopper = EarlyStopping("min", patience=2, min_delta=0.0)
    assert stopper.step(1, 1.0) == (True, False, "improved")
    assert stopper.step(2, 1.0) == (False, False, "no improvement")  # equal is not better
    assert stopper.step(3, 0.9) == (True, False, "improved")
    assert stopper.step(4, 0.95) == (False, False, "no improvement")
    improved, should_stop, reason = stopper.step(5, 2.0)
    assert (improved, should_stop) == (False, True)
    assert reason == "no improvement over 0.9 for 2 epochs"
    assert stopper.best_epoch == 3 and stopper.best == 0.9


def test_early_stopping_max_mode_with_min_delta() -> None:
    stopper = EarlyStopping("max", patience=5, min_delta=0.1)
    assert stopper.step(1, 0.5)[0] is True
    assert stopper.step(2, 0.55)[0] is False  # better, but by less than min_delta
    assert stopper.step(3, 0.61)[0] is True
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs) == (0.61, 3, 0)


def test_early_stopping_state_dict_roundtrip() -> None:
    stopper = EarlyStopping("min", patience=3, min_delta=0.0)
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.8], start=1):
        stopper.step(epoch, value)
    state = stopper.state_dict()
    assert state == {"best": 0.5, "best_epoch": 2, "bad_epochs": 2}

    resumed = EarlyStopping("min", patience=3, min_delta=0.0)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    # Resumed and original decide the same on the next value: stop after a third bad epoch.
    assert resumed.step(5, 0.9) == stopper.step(5, 0.9)
    assert resumed.step(5, 0.9)[1] is True


def test_batches_cover_every_row_once() -> None:
    generator = torch.Generator().manual_seed(0)
    order, parts = training.batches(103, 10, generator)
    assert [len(part) for part in parts] == [10] * 10 + [3]
    assert torch.equal(torch.cat(parts), order)
    assert sorted(torch.cat(parts).tolist()) == list(range(103))


def test_batches_are_seeded_and_shuffled() -> None:
    first, _ = training.batches(50, 8, torch.Generator().manual_seed(1))
    again, _ = training.batches(50, 8, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, torch.arange(50))


@pytest.mark.parametrize(
    ("name", "kind"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)],
    ids=["sgd", "adam", "adamw"],
)
def test_make_optimizer(name: str, kind: type) -> None:
    optimizer = training.make_optimizer(nn.Linear(2, 1), repo_params.optim(optimizer=name, lr=0.05))
    assert isinstance(optimizer, kind)
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_l1_penalty_sums_weights_not_biases() -> None:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
        layer.bias.fill_(5.0)
    assert float(training.l1_penalty(layer).detach()) == pytest.approx(3.0)


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((outputs.argmax(1) == targets).float().mean())


def _loop(optim: OptimParams, monitor: str, patience: int) -> training.LoopConfig:
    return training.LoopConfig(
        schedule=repo_params.schedule(),
        optim=optim,
        stopping=repo_params.early_stopping(monitor=monitor, patience=patience),
    )


def _conflicting_data() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Dev labels are the opposite of train labels: the more the net learns, the worse dev gets."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 2, generator=generator)
    labels = (features[:, 0] > 0).long()
    return (features, labels), (features.clone(), 1 - labels)


def test_fit_restores_best_dev_weights() -> None:
    torch.manual_seed(0)
    net = nn.Linear(2, 2)
    train, dev = _conflicting_data()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch(row: dict[str, float]) -> None:
        snapshots[int(row["epoch"])] = {k: v.clone() for k, v in net.state_dict().items()}

    result = training.fit(
        net,
        nn.CrossEntropyLoss(),
        _accuracy,
        train,
        dev,
        _loop(repo_params.optim(optimizer="sgd", lr=0.5, batch_size=16, epochs=6), "dev_loss", 10),
        torch.Generator().manual_seed(0),
        on_epoch,
    )
    assert len(result.history) == 6 and result.stop_reason == "max epochs reached"
    dev_losses = [row["dev_loss"] for row in result.history]
    assert result.best_epoch == 1 + dev_losses.index(min(dev_losses))
    assert result.best_epoch < 6
    final = net.state_dict()
    for key, value in snapshots[result.best_epoch].items():
        assert torch.equal(final[key], value)
    assert not torch.equal(final["weight"], snapshots[6]["weight"])


def test_fit_stops_early_and_reports_why() -> None:
    torch.manual_seed(0)
    net = nn.Linear(2, 2)
    train, dev = _conflicting_data()
    result = training.fit(
        net,
        nn.CrossEntropyLoss(),
        _accuracy,
        train,
        dev,
        _loop(repo_params.optim(optimizer="sgd", lr=0.5, batch_size=16, epochs=50), "dev_score", 2),
        torch.Generator().manual_seed(0),
    )
    assert len(result.history) < 50
    assert result.stop_reason.startswith(f"early stop at epoch {len(result.history)}: ")
    columns = {"epoch", "train_loss", "train_score", "dev_loss", "dev_score"}
    assert result.history[0].keys() == columns


def test_fit_is_deterministic() -> None:
    def run() -> list[dict[str, float]]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        train, _ = _conflicting_data()
        return training.fit(
            net,
            nn.CrossEntropyLoss(),
            _accuracy,
            train,
            train,
            _loop(repo_params.optim(batch_size=8, epochs=3), "dev_loss", 10),
            torch.Generator().manual_seed(0),
        ).history

    assert run() == run()


def test_predict_outputs_in_eval_mode_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "EVAL_BATCH", 7)
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.9))
    features = torch.randn(20, 3)
    outputs = training.predict_outputs(net, features)
    assert not net.training
    assert torch.allclose(outputs, net[0](features).detach())


def test_predict_outputs_of_no_rows_is_an_empty_batch() -> None:
    net = nn.Sequential(nn.Linear(3, 2))
    assert training.predict_outputs(net, torch.empty(0, 3)).shape == (0, 2)
