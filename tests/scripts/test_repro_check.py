"""scripts/repro_check.py: metric comparison and stale-lock detection on tiny inputs, plus one
run of the real check on a two-stage DVC pipeline in tmp_path (no ML, a few seconds)."""

from __future__ import annotations

import json

import pytest


def statuses(rows) -> dict[str, str]:
    return {row.key: row.status for row in rows}


def test_leaves_flatten_dicts_and_lists(rc):
    tree = {"a": {"b": 1, "c": [2, {"d": 3}]}, "e": "x"}
    assert dict(rc.leaves(tree)) == {"a.b": 1, "a.c[0]": 2, "a.c[1].d": 3, "e": "x"}


def test_identical_metrics_give_no_rows(rc):
    metrics = {"train.json": {"dev": {"accuracy": 0.97, "n": 359}, "task": "classification"}}
    assert rc.compare_metrics(metrics, json.loads(json.dumps(metrics))) == []


@pytest.mark.parametrize(
    ("committed", "rerun", "status"),
    [
        (0.970, 0.985, None),  # within the absolute 0.02
        (0.970, 0.995, "drift"),
        (1000.0, 1015.0, None),  # within the relative 2 %
        (1000.0, 1030.0, "drift"),
        (359, 360, "drift"),  # integers are exact
        (0.5, float("nan"), "drift"),
        (float("nan"), float("nan"), None),
        (0.5, "0.5", "type"),
        ("good fit", "overfitting", "text"),
    ],
    ids=["abs-ok", "abs-drift", "rel-ok", "rel-drift", "int", "nan", "nan-nan", "type", "text"],
)
def test_leaf_tolerance(rc, committed, rerun, status):
    rows = rc.compare_metrics({"m.json": {"k": committed}}, {"m.json": {"k": rerun}})
    assert statuses(rows) == ({} if status is None else {"m.json:k": status})


def test_missing_and_extra_keys_fail(rc):
    rows = rc.compare_metrics(
        {"m.json": {"a": 1.0, "b": 2.0}, "gone.json": {"x": 1}},
        {"m.json": {"a": 1.0, "c": 2.0}},
    )
    assert statuses(rows) == {"m.json:b": "missing", "gone.json:x": "missing", "m.json:c": "extra"}
    assert all(row.fails for row in rows)


def test_best_params_and_epochs_are_reported_not_enforced(rc):
    committed = {"tune.json": {"best_params": {"lr": 0.001, "sizes": [128]}, "best_epoch": 40}}
    rerun = {"tune.json": {"best_params": {"lr": 0.004, "sizes": [256, 128]}, "best_epoch": 52}}
    rows = rc.compare_metrics(committed, rerun)
    assert {row.status for row in rows} == {"not enforced"}
    assert not any(row.fails for row in rows)


def test_table_lists_failures_first_with_allowed_diff(rc):
    rows = rc.compare_metrics(
        {"m.json": {"acc": 0.9, "verdict": "good fit"}},
        {"m.json": {"acc": 0.8, "verdict": "overfitting"}},
    )
    lines = rc.format_table(rows).splitlines()
    assert lines[0].split() == ["metric", "committed", "rerun", "|diff|", "allowed", "status"]
    assert lines[2].split() == ["m.json:acc", "0.9", "0.8", "0.1", "0.02", "drift"]
    assert lines[3].startswith("m.json:verdict") and lines[3].endswith("text")


LOCK = {
    "stages": {
        "prepare": {"deps": [{"path": "stages/prepare.py"}], "outs": [{"path": "data/prepared"}]},
        "split": {
            "deps": [{"path": "data/prepared"}],
            "outs": [{"path": "data/split"}, {"path": "metrics/split.json"}],
        },
    }
}


def test_missing_outputs_of_a_clean_copy_are_not_stale(rc):
    status = {
        "prepare": [{"changed outs": {"data/prepared": "not in cache"}}],
        "split": [
            {"changed deps": {"data/prepared": "deleted"}},
            {"changed outs": {"data/split": "not in cache"}},
        ],
    }
    assert rc.stale_stages(status, LOCK) == []


def test_changed_code_params_command_and_metrics_are_stale(rc):
    status = {
        "prepare": [
            {"changed deps": {"stages/prepare.py": "modified", "params.yaml": {"prepare.x": "new"}}}
        ],
        "split": ["changed command", {"changed outs": {"metrics/split.json": "modified"}}],
    }
    assert rc.stale_stages(status, LOCK) == [
        "prepare: changed deps stages/prepare.py modified",
        "prepare: param prepare.x in params.yaml new",
        "split: changed command",
        "split: changed outs metrics/split.json modified",
    ]


def test_data_tracked_by_a_dvc_file_is_not_a_lock_stage(rc):
    status = {"data/raw.dvc": [{"changed outs": {"data/raw": "not in cache"}}]}
    assert rc.stale_stages(status, LOCK) == []
    status = {"data/raw.dvc": [{"changed outs": {"data/raw": "modified"}}]}
    assert rc.stale_stages(status, LOCK) == ["data/raw.dvc: changed outs data/raw modified"]


def test_stages_and_paths_the_lock_does_not_record_are_stale(rc):
    status = {
        "split": [{"changed deps": {"data/prepared": "deleted", "data/extra.csv": "deleted"}}],
        "evaluate": [{"changed deps": {"data/split": "deleted"}}],
    }
    assert rc.stale_stages(status, LOCK) == [
        "split: changed deps data/extra.csv not recorded in dvc.lock",
        "evaluate: not in dvc.lock",
    ]
