"""tuning/search.py: space validation, objective, samplers, pruners, storage and results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import repo_params
from optuna.trial import TrialState

from reprotrain import tuning
from reprotrain.config import SpaceParam, TuneParams
from reprotrain.config.errors import UserError


def space(**entries: dict) -> dict[str, SpaceParam]:
    return {key.replace("__", "."): SpaceParam(**spec) for key, spec in entries.items()}


def tune_params(**overrides) -> TuneParams:
    base = {"space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    return repo_params.tune(**(base | overrides))


# --- the space ----------------------------------------------------------------------------


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: tune\.space: 'optim\.learning_rate' is not a train "
        r"hyperparameter; valid: model, (?=.*\boptim\.lr,)(?=.*\bmlp\.dropout,)",
    ):
        tuning.validate_space(
            space(optim__learning_rate={"type": "float", "low": 0.1, "high": 1}),
            repo_params.train(),
        )


@pytest.mark.parametrize("key", ["seeds", "device"], ids=["seeds", "device"])
def test_run_settings_are_not_hyperparameters(key: str) -> None:
    with pytest.raises(UserError, match=rf"'{key}' is not a train hyperparameter"):
        tuning.validate_space(
            {key: SpaceParam(type="categorical", choices=[[0], [1]])}, repo_params.train()
        )


def test_empty_space_is_an_error() -> None:
    with pytest.raises(
        UserError, match=r"tune\.space: needs at least one hyperparameter, got none"
    ):
        tuning.validate_space({}, repo_params.train())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"mlp.dropout": {"type": "float", "low": 0.0, "high": 1.5}},
            r"tune\.space\.mlp\.dropout: value 1\.5 is not valid for train\.mlp\.dropout "
            r"\(Input should be less than 1",
            id="float-out-of-range",
        ),
        pytest.param(
            {"optim.batch_size": {"type": "float", "low": 16, "high": 64}},
            r"tune\.space\.optim\.batch_size: value 16\.0 is not valid for "
            r"train\.optim\.batch_size \(Input should be a valid integer",
            id="float-range-on-int-key",
        ),
        pytest.param(
            {"model": {"type": "categorical", "choices": ["mlp", "xgboost"]}},
            r"tune\.space\.model: value 'xgboost' is not valid for train\.model \(.*xgboost",
            id="unknown-model-family",
        ),
        pytest.param(
            {"optim.optimizer": {"type": "categorical", "choices": ["adam", "lion"]}},
            r"tune\.space\.optim\.optimizer: value 'lion' is not valid",
            id="unknown-choice",
        ),
    ],
)
def test_space_values_are_validated_against_train_params(entry: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        tuning.validate_space({k: SpaceParam(**v) for k, v in entry.items()}, repo_params.train())


def test_every_kind_of_hyperparameter_is_accepted() -> None:
    tuning.validate_space(
        space(
            model={"type": "categorical", "choices": ["mlp", "logistic_regression"]},
            optim__lr={"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            optim__batch_size={"type": "int", "low": 16, "high": 128, "log": True},
            optim__epochs={"type": "int", "low": 5, "high": 50},
            optim__weight_decay={"type": "float", "low": 0.0, "high": 0.01},
            optim__l1={"type": "float", "low": 0.0, "high": 0.001},
            mlp__hidden_sizes={"type": "categorical", "choices": [[64], [128, 64], []]},
            mlp__dropout={"type": "float", "low": 0.0, "high": 0.5},
            logistic_regression__C={"type": "float", "low": 0.01, "high": 100, "log": True},
        ),
        repo_params.train(),
    )


def test_tunable_keys_follow_train_params() -> None:
    keys = tuning.tunable_keys()
    assert {"model", "optim.lr", "optim.batch_size", "mlp.hidden_sizes", "mlp.dropout"} <= set(keys)
    assert "seeds" not in keys and "device" not in keys


def test_suggest_decodes_list_choices_and_apply_validates() -> None:
    entries = space(
        mlp__hidden_sizes={"type": "categorical", "choices": [[8], [16, 8]]},
        optim__batch_size={"type": "int", "low": 8, "high": 64},
    )
    trial = optuna.trial.FixedTrial({"mlp.hidden_sizes": "[16, 8]", "optim.batch_size": 32})
    values = tuning.suggest(trial, entries)
    assert values == {"mlp.hidden_sizes": [16, 8], "optim.batch_size": 32}
    applied = tuning.apply(repo_params.train(), values)
    assert applied.mlp.hidden_sizes == [16, 8] and applied.optim.batch_size == 32


def test_grid_spaces_ranges_and_encodes_lists() -> None:
    grid = tuning.grid(
        space(
            optim__lr={"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            optim__batch_size={"type": "int", "low": 16, "high": 17},
            mlp__hidden_sizes={"type": "categorical", "choices": [[8], [16]]},
        ),
        points=3,
    )
    assert np.allclose(grid["optim.lr"], [1e-4, 1e-3, 1e-2])
    assert grid["optim.batch_size"] == [16, 17]  # rounded duplicates removed
    assert grid["mlp.hidden_sizes"] == ["[8]", "[16]"]


@pytest.mark.parametrize(
    ("method", "n_trials", "expected"),
    [("grid", None, 9), ("grid", 4, 4), ("grid", 50, 9), ("tpe", 7, 7), ("random", 3, 3)],
    ids=["grid-whole", "grid-part", "grid-capped", "tpe", "random"],
)
def test_trial_budget(method: str, n_trials: int | None, expected: int) -> None:
    params = tune_params(
        method=method,
        n_trials=n_trials,
        space={
            "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "mlp.dropout": {"type": "float", "low": 0.0, "high": 0.2},
        },
    )
    assert tuning.trial_budget(params) == expected


# --- the objective ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "metric", "expected"),
    [
        ("classification", "auto", ("accuracy", "maximize")),
        ("classification", "macro_f1", ("macro_f1", "maximize")),
        ("classification", "log_loss", ("log_loss", "minimize")),
        ("regression", "auto", ("r2", "maximize")),
        ("regression", "rmse", ("rmse", "minimize")),
        ("regression", "mae", ("mae", "minimize")),
    ],
    ids=lambda value: str(value),
)
def test_objective_direction_follows_the_metric(task: str, metric: str, expected: tuple) -> None:
    objective = tuning.resolve_objective(tune_params(metric=metric), task)
    assert (objective.metric, objective.direction) == expected


def test_metric_must_fit_the_task() -> None:
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: tune\.metric: for a classification task one of auto, accuracy, "
        r"macro_f1, log_loss, got 'rmse'$",
    ):
        tuning.resolve_objective(tune_params(metric="rmse"), "classification")


def test_explicit_direction_must_agree_with_the_metric() -> None:
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: tune\.direction: log_loss is to minimize; allowed: auto, "
        r"minimize, got 'maximize'$",
    ):
        tuning.resolve_objective(
            tune_params(metric="log_loss", direction="maximize"), "classification"
        )
    explicit = tuning.resolve_objective(
        tune_params(metric="r2", direction="maximize"), "regression"
    )
    assert explicit.direction == "maximize"


@pytest.mark.parametrize(
    ("task", "metric", "direction", "expected"),
    [
        ("classification", "accuracy", "maximize", 0.9),
        ("classification", "log_loss", "minimize", 0.25),
        ("classification", "macro_f1", "maximize", 0.9),  # proxy: the primary score
        ("regression", "r2", "maximize", 0.9),
        ("regression", "mse", "minimize", 0.25),
        ("regression", "rmse", "minimize", 0.5),
        ("regression", "mae", "minimize", 0.25),  # proxy: the loss
    ],
    ids=lambda value: str(value),
)
def test_epoch_value_reported_to_the_pruner(
    task: str, metric: str, direction: str, expected: float
) -> None:
    row = {"epoch": 3, "train_loss": 0.1, "train_score": 1.0, "dev_loss": 0.25, "dev_score": 0.9}
    value = tuning.epoch_value(row, tuning.Objective(metric, direction), task)
    assert math.isclose(value, expected)


# --- the study ----------------------------------------------------------------------------


def test_samplers_and_pruners_follow_params() -> None:
    assert isinstance(
        tuning.make_sampler(tune_params(method="grid"), 0), tuning.BudgetedGridSampler
    )
    assert isinstance(
        tuning.make_sampler(tune_params(method="random"), 0), optuna.samplers.RandomSampler
    )
    tpe = tuning.make_sampler(tune_params(method="tpe", tpe_startup_trials=2), 0, parallel=True)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._n_startup_trials == 2 and tpe._constant_liar
    assert isinstance(tuning.make_pruner(tune_params(pruner="none"), 10), optuna.pruners.NopPruner)
    median = tuning.make_pruner(tune_params(pruner="median", prune_warmup_epochs=4), 10)
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 4
    hyperband = tuning.make_pruner(tune_params(pruner="hyperband", prune_warmup_epochs=2), 30)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (2, 30)


def test_max_epochs_comes_from_the_space_when_epochs_are_tuned() -> None:
    train_params = repo_params.train()
    assert tuning.max_epochs(tune_params(), train_params) == train_params.optim.epochs
    tuned = tune_params(space={"optim.epochs": {"type": "int", "low": 5, "high": 40}})
    assert tuning.max_epochs(tuned, train_params) == 40


def test_relative_sqlite_storage_resolves_against_dvc_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tuning.storage_url("sqlite:///tune.db") == f"sqlite:///{tmp_path / 'tune.db'}"
    assert tuning.storage_url("sqlite:////abs/tune.db") == "sqlite:////abs/tune.db"
    assert tuning.storage_url("journal:///t.journal") == f"journal:///{tmp_path / 't.journal'}"
    assert tuning.storage_url("journal:////abs/t.journal") == "journal:////abs/t.journal"
    assert tuning.storage_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert tuning.storage_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("missing/tune.db", r"folder .*missing does not exist \(create it: mkdir -p .*missing\)"),
        ("a-file/tune.db", r"/.*a-file is not a folder"),
    ],
    ids=["no-folder", "parent-is-a-file"],
)
@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_a_file_storage_needs_an_existing_folder(
    tmp_path: Path, where: str, problem: str, scheme: str
) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(
        UserError, match=rf"^params\.yaml: tune\.storage: {scheme}:///.*: {problem}; allowed: "
    ):
        tuning.open_storage(f"{scheme}:///{tmp_path / where}")
    assert not (tmp_path / "missing").exists()  # nothing created on the fly


def test_unreachable_storage_is_one_line_without_the_password() -> None:
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: tune\.storage: cannot open "
        r"postgresql\+psycopg2://u:\*\*\*@127\.0\.0\.1:9/x \(OperationalError: ",
    ) as caught:
        tuning.open_storage("postgresql://u:secret@127.0.0.1:9/x")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_sqlite_study_is_loaded_not_recreated(tmp_path: Path) -> None:
    params = tune_params(storage=f"sqlite:///{tmp_path / 'tune.db'}")
    objective = tuning.Objective("accuracy", "maximize")
    first = tuning.open_study(params, objective, 0, tuning.open_storage(params.storage), 10)
    first.add_trial(optuna.create_trial(value=0.5, params={}, distributions={}))
    again = tuning.open_study(params, objective, 0, tuning.open_storage(params.storage), 10)
    assert len(again.trials) == 1


def test_fingerprint_ignores_budget_but_not_space_or_data() -> None:
    data = (np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    objective = tuning.Objective("accuracy", "maximize")

    def fingerprint(params: TuneParams, train=data) -> str:
        return tuning.fingerprint(params, repo_params.train(), objective, (*train, *data))

    base = fingerprint(tune_params())
    assert fingerprint(tune_params(n_trials=99, pruner="median", n_jobs=4)) == base
    assert fingerprint(tune_params(method="random")) != base
    assert fingerprint(tune_params(), (np.ones((4, 2)), data[1])) != base


def test_a_study_refuses_trials_of_another_search() -> None:
    study = optuna.create_study()
    with pytest.raises(UserError, match=r"study 'no-name-.*' has not been started"):
        tuning.check_fingerprint(study, "abc", claim=False)
    tuning.check_fingerprint(study, "abc", claim=True)
    tuning.check_fingerprint(study, "abc", claim=False)
    with pytest.raises(
        UserError, match=r"made with other train/tune params or data; use a new tune\.study_name"
    ):
        tuning.check_fingerprint(study, "xyz", claim=True)


# --- results ------------------------------------------------------------------------------


def study_with(*trials: optuna.trial.FrozenTrial, direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for trial in trials:
        study.add_trial(trial)
    return study


LR = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
SIZES = optuna.distributions.CategoricalDistribution(["[8]", "[16]"])


def frozen(state: TrialState, value=None, lr=1e-3, sizes="[8]", epochs=0, attrs=None):
    return optuna.create_trial(
        state=state,
        value=value,
        params={"optim.lr": lr, "mlp.hidden_sizes": sizes},
        distributions={"optim.lr": LR, "mlp.hidden_sizes": SIZES},
        intermediate_values={step: 0.5 for step in range(1, epochs + 1)},
        user_attrs=attrs or {},
    )


def test_trials_table_and_counts_have_no_timings() -> None:
    study = study_with(
        frozen(TrialState.COMPLETE, 0.9, epochs=3),
        frozen(TrialState.PRUNED, epochs=2),
        frozen(TrialState.FAIL, attrs={"error": "ValueError: boom"}),
    )
    rows = tuning.trials_table(study)
    assert [row["state"] for row in rows] == ["complete", "pruned", "failed"]
    assert [row["dev_score"] for row in rows] == [0.9, None, None]
    assert [row["epochs"] for row in rows] == [3, 2, None]
    assert [row["last_epoch_dev_score"] for row in rows] == [0.5, 0.5, None]
    assert set(rows[0]) == {
        "trial",
        "state",
        "dev_score",
        "epochs",
        "last_epoch_dev_score",
        "optim.lr",
        "mlp.hidden_sizes",
    }
    assert tuning.state_counts(study) == {"complete": 1, "pruned": 1, "failed": 1}


@pytest.mark.parametrize(
    ("direction", "best"),
    [("maximize", [0.7, 0.7, 0.9]), ("minimize", [0.7, 0.6, 0.6])],
    ids=["maximize", "minimize"],
)
def test_history_table_keeps_complete_trials_with_the_best_so_far(direction, best) -> None:
    states = ["complete", "pruned", "complete", "failed", "complete"]
    scores = [0.7, None, 0.6, None, 0.9]
    trials = [
        {"trial": n, "state": state, "dev_score": score}
        for n, (state, score) in enumerate(zip(states, scores, strict=True))
    ]
    history = tuning.history_table(trials, direction)
    assert [row["trial"] for row in history] == [0, 2, 4]  # no blank scores to draw as zeros
    assert [row["dev_score"] for row in history] == [0.7, 0.6, 0.9]
    assert [row["best_so_far"] for row in history] == best


def test_best_trial_follows_the_direction() -> None:
    trials = (frozen(TrialState.COMPLETE, 0.3), frozen(TrialState.COMPLETE, 0.1))
    assert tuning.best_trial(study_with(*trials)).value == 0.3
    assert tuning.best_trial(study_with(*trials, direction="minimize")).value == 0.1


def test_no_complete_trial_is_an_error_with_the_first_failure() -> None:
    study = study_with(
        frozen(TrialState.PRUNED, epochs=2),
        frozen(
            TrialState.FAIL, attrs={"error": "UserError: linear_regression needs a regression task"}
        ),
    )
    with pytest.raises(
        UserError,
        match=r"^tune: none of the study's 2 trials completed; first error: trial 1: "
        r"UserError: linear_regression needs a regression task$",
    ):
        tuning.best_trial(study)


def test_importances_need_two_complete_trials_and_two_params() -> None:
    one = study_with(frozen(TrialState.COMPLETE, 0.9))
    assert tuning.param_importances(one, 0) == (None, "needs at least 2 complete trials, got 1")
    single_param = study_with(
        *(
            optuna.create_trial(value=v, params={"x": v}, distributions={"x": LR})
            for v in (0.001, 0.01)
        )
    )
    assert tuning.param_importances(single_param, 0) == (
        None,
        "needs at least 2 tuned params, got 1",
    )
    rng = np.random.default_rng(0)
    many = study_with(
        *(
            frozen(TrialState.COMPLETE, float(rng.random()), lr=float(lr), sizes=sizes)
            for lr, sizes in zip(np.geomspace(1e-4, 1e-1, 8), ["[8]", "[16]"] * 4, strict=True)
        )
    )
    importances, reason = tuning.param_importances(many, 0)
    assert reason == "ok" and set(importances) == {"optim.lr", "mlp.hidden_sizes"}
    assert math.isclose(sum(importances.values()), 1.0)


def test_fixed_values_apply_to_every_trial() -> None:
    params = tune_params(fixed={"model": "mlp", "optim.epochs": 7})
    base = tuning.trial_params(repo_params.train(model="logistic_regression"), params)
    assert (base.model, base.optim.epochs) == ("mlp", 7)


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        pytest.param(
            {"optim.lr": 0.1},
            r"^params\.yaml: tune\.fixed: 'optim\.lr' is also in tune\.space; a key is either "
            r"fixed or searched, got both$",
            id="fixed-and-searched",
        ),
        pytest.param(
            {"optim.speed": 1},
            r"^params\.yaml: tune\.fixed: 'optim\.speed' is not a train",
            id="unknown",
        ),
        pytest.param(
            {"optim.epochs": 0},
            r"^params\.yaml: tune\.fixed\.optim\.epochs: value 0 is not valid for "
            r"train\.optim\.epochs \(Input should be greater than or equal to 1",
            id="invalid-value",
        ),
    ],
)
def test_fixed_values_are_validated(fixed: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        tuning.trial_params(repo_params.train(), tune_params(fixed=fixed))
