"""params.yaml validation: every invalid input is one line naming the key, allowed, given."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import repo_params
import yaml
from project_copy import REPO_ROOT

from reprotrain import config
from reprotrain.config import TrainParams
from reprotrain.config.errors import UserError

REPO_PARAMS = REPO_ROOT / "params.yaml"

INVALID_SECTIONS = [
    pytest.param(
        "train",
        {"epochs": 5},
        r"params\.yaml: unknown key 'train\.epochs'; allowed: model, seeds, .*\boptim\b",
        id="unknown-key-lists-allowed",
    ),
    pytest.param(
        "train",
        {"optim": {"lrr": 0.1}},
        r"unknown key 'train\.optim\.lrr'; allowed: optimizer, lr, momentum, weight_decay",
        id="unknown-nested-key",
    ),
    pytest.param(
        "tune",
        {"space": {"optim.lr": {"type": "float", "lo": 0.1, "high": 1.0}}},
        r"unknown key 'tune\.space\.optim\.lr\.lo'; allowed: type, low, high, log, choices",
        id="unknown-space-key",
    ),
    pytest.param(
        "base",
        {"seed": "1"},
        r"params\.yaml: base\.seed: Input should be a valid integer, got '1'",
        id="wrong-type-string",
    ),
    pytest.param(
        "base",
        {"threads": 1.0},
        r"base\.threads: Input should be a valid integer, got 1\.0",
        id="wrong-type-float-for-int",
    ),
    pytest.param(
        "split",
        {"stratify": "yes"},
        r"split\.stratify: Input should be a valid boolean, got 'yes'",
        id="wrong-type-bool",
    ),
    pytest.param(
        "base",
        {"seed": -1},
        r"base\.seed: Input should be greater than or equal to 0, got -1",
        id="out-of-range-negative-seed",
    ),
    pytest.param(
        "split",
        {"train": 1.5},
        r"split\.train: Input should be less than 1, got 1\.5",
        id="out-of-range-fraction",
    ),
    pytest.param(
        "train",
        {"optim": {"lr": 0}},
        r"train\.optim\.lr: Input should be greater than 0, got 0",
        id="out-of-range-lr",
    ),
    pytest.param(
        "train",
        {"mlp": {"hidden_sizes": [64, 0]}},
        r"train\.mlp\.hidden_sizes\.1: Input should be greater than or equal to 1, got 0",
        id="out-of-range-list-item",
    ),
    pytest.param(
        "train",
        {"seeds": []},
        r"train\.seeds: List should have at least 1 item",
        id="empty-seeds",
    ),
    pytest.param(
        "train",
        {"seeds": [0, 1, 0]},
        r"train\.seeds: seeds must differ .*fakes a std of 0\); repeated: \[0\]",
        id="repeated-seeds",
    ),
    pytest.param(
        "split",
        {"train": 0.5, "dev": 0.2, "test": 0.2},
        r"params\.yaml: split: train \+ dev \+ test must sum to 1, got 0\.5 \+ 0\.2 \+ 0\.2 = 0\.9",
        id="fractions-not-summing-to-one",
    ),
    pytest.param(
        "train",
        {"model": "gpt9"},
        r"params\.yaml: train\.model: must be one of auto, mlp, .*logistic_regression.*, "
        r"got .gpt9.",
        id="unknown-model",
    ),
    pytest.param(
        "train",
        {"optim": {"optimizer": "rmsprop"}},
        r"train\.optim\.optimizer: Input should be 'sgd', 'adam' or 'adamw', got 'rmsprop'",
        id="unknown-optimizer",
    ),
    pytest.param(
        "prepare",
        {"task": "ranking"},
        r"prepare\.task: Input should be 'auto', 'classification' or 'regression', got 'ranking'",
        id="unknown-task",
    ),
    pytest.param(
        "tune",
        {"space": {"optim.lr": {"type": "float"}}},
        r"tune\.space\.optim\.lr: a float parameter needs 'low' and 'high'",
        id="space-range-incomplete",
    ),
    pytest.param(
        "tune",
        {"space": {"optim.lr": {"type": "float", "low": 1.0, "high": 0.1}}},
        r"tune\.space\.optim\.lr: 'low' must be <= 'high', got low=1\.0, high=0\.1",
        id="space-low-above-high",
    ),
    pytest.param(
        "tune",
        {"space": {"optim.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
        r"tune\.space\.optim\.lr: a log-scaled parameter needs low > 0, got low=0\.0",
        id="space-log-nonpositive",
    ),
    pytest.param(
        "tune",
        {"space": {"mlp.dropout": {"type": "categorical"}}},
        r"tune\.space\.mlp\.dropout: a categorical parameter needs a non-empty 'choices' list",
        id="space-categorical-no-choices",
    ),
    pytest.param(
        "train",
        {"model": "svm", "processes": 2},
        r"^params\.yaml: train: processes > 1 \(DistributedDataParallel\) needs a torch model "
        r"\(mlp, cnn\), got processes 2 with model 'svm'; set train\.processes: 1$",
        id="processes-need-torch",
    ),
    pytest.param(
        "train",
        "mlp",
        r"params\.yaml: train: Input should be a valid dictionary",
        id="section-not-a-mapping",
    ),
    pytest.param(
        "train",
        {"init_from": {"path": "/data/checkpoints/cnn.pt"}},
        r"^params\.yaml: train\.init_from\.path: allowed: pretrained or a relative path under "
        r"it \(.*\), got '/data/checkpoints/cnn\.pt'$",
        id="checkpoint-outside-pretrained",
    ),
]


@pytest.mark.parametrize(("section", "raw", "message"), INVALID_SECTIONS)
def test_parse_section_rejects_with_one_line(section: str, raw: object, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        repo_params.parse(section, raw)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "trian:\n  model: mlp\n",
            r"params\.yaml: unknown section 'trian'; allowed: base, prepare, split, "
            r".*\btrain, tune\b",
            id="unknown-section",
        ),
        pytest.param(
            "- a\n- b\n", r"params\.yaml: must be a mapping of sections, got list", id="not-mapping"
        ),
        pytest.param(
            "train: [unclosed\n",
            r"^params\.yaml: not valid YAML \(line 2, column 1: expected ',' or '\]', but got",
            id="invalid-yaml",
        ),
        pytest.param(
            "base:\n  seed: 0\n\tthreads: 1\n",
            r"^params\.yaml: not valid YAML \(line 3, column 1: found character '\\t'",
            id="tab-indent",
        ),
        pytest.param(
            "base:\n  seed: caf\xe9\n".encode("latin-1").decode("latin-1"),
            r"^params\.yaml: not UTF-8 text \(line 2, byte 17\); save it as UTF-8$",
            id="not-utf8",
        ),
    ],
)
def test_load_rejects_bad_files(workdir, text: str, message: str) -> None:
    directory = workdir()
    (directory / "params.yaml").write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=message):
        config.load("train")


def test_load_missing_file(workdir) -> None:
    directory = workdir()
    (directory / "params.yaml").unlink()
    with pytest.raises(UserError, match=r"params\.yaml: file not found"):
        config.load("base")


def test_load_error_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("split:\n  train: 2\n")
    with pytest.raises(UserError, match=r"custom\.yaml: split\.train: .*got 2"):
        config.load("split", path=path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", r"params\.yaml: base\.seed: missing; every key is required", id="empty"),
        pytest.param(
            "base:\n  seed: 1\n", r"params\.yaml: base\.threads: missing", id="missing-key"
        ),
    ],
)
def test_every_key_is_required(workdir, text: str, message: str) -> None:
    """params.yaml is the one source of defaults: the classes hold none, a missing key is
    an error that names it (no silent default that disagrees with params.yaml)."""
    directory = workdir()
    (directory / "params.yaml").write_text(text)
    with pytest.raises(UserError, match=message):
        config.load("base")


def test_params_classes_hold_no_defaults() -> None:
    """Only a search-space entry has optional fields (a range or a list of choices)."""

    def defaults(model: type) -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            if not field.is_required():
                found.append(f"{model.__name__}.{name}")
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, config.Section):
                found += defaults(annotation)
        return found

    assert [name for model in config.SECTIONS.values() for name in defaults(model)] == []


def test_load_returns_sections_in_order(workdir) -> None:
    workdir({"base": {"seed": 7}, "train": {"model": "logistic_regression", "seeds": [3, 4]}})
    train, base = config.load("train", "base")
    assert isinstance(train, TrainParams)
    assert train.model == "logistic_regression"
    assert train.seeds == [3, 4]
    assert base.seed == 7


def test_int_is_accepted_where_a_float_is_expected() -> None:
    train = repo_params.parse("train", {"optim": {"lr": 1}})
    assert train.optim.lr == 1.0


def test_sections_are_frozen() -> None:
    split = repo_params.parse("split", {})
    with pytest.raises(Exception, match="frozen"):
        split.train = 0.9  # type: ignore[misc]


def test_fractions_tolerate_float_rounding() -> None:
    split = repo_params.split(train=0.7, dev=0.15, test=0.15)
    assert split.train + split.dev + split.test == pytest.approx(1.0)


def test_repository_params_are_valid() -> None:
    sections = config.load(*config.SECTIONS, path=REPO_PARAMS)
    assert [type(section) for section in sections] == list(config.SECTIONS.values())


def test_leaf_keys_are_dotted_train_hyperparameters() -> None:
    keys = config.leaf_keys(TrainParams)
    assert {"model", "seeds", "optim.lr", "mlp.hidden_sizes", "early_stopping.patience"} <= set(
        keys
    )
    assert "optim" not in keys


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """YAML 1.2 (as DVC reads it): `lr: 1e-3` is a float, not the string '1e-3'."""
    path = tmp_path / "params.yaml"
    raw = yaml.safe_dump(
        repo_params.merged({"train": {"optim": {"lr": "LR", "weight_decay": "WD"}}})
    )
    path.write_text(raw.replace("LR", "1e-3").replace("WD", "5E-4"))
    (train,) = config.load("train", path=path)
    assert train.optim.lr == 0.001
    assert train.optim.weight_decay == 0.0005


def test_yaml_1_1_booleans_stay_strings(tmp_path):
    """`progress: off` (as `dvc exp run -S` writes it, unquoted) is the string 'off'."""
    path = tmp_path / "params.yaml"
    raw = yaml.safe_dump(repo_params.merged({"train": {"progress": "OFF", "checkpoint": False}}))
    path.write_text(raw.replace("OFF", "off"))
    (train,) = config.load("train", path=path)
    assert train.progress == "off"
    assert train.checkpoint is False


def test_dvc_set_param_rewrites_one_line(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml through DVC's own YAML round trip: in the
    repository's style, a one-value change is a one-line diff and the rest stays."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    original = REPO_PARAMS.read_text()
    path.write_text(original)
    apply_overrides(str(path), ["base.seed=42"])  # the value it has: nothing may move
    assert path.read_text() == original
    apply_overrides(str(path), ["train.optim.lr=0.003"])
    changed = [
        line
        for line in difflib.unified_diff(original.splitlines(), path.read_text().splitlines(), n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert [line.split("#")[0].rstrip() for line in changed] == ["-    lr: 0.001", "+    lr: 0.003"]


def test_long_lists_are_cut_in_messages() -> None:
    from reprotrain.config.errors import brief

    assert brief([0, 1, 2]) == "[0, 1, 2]"
    cut = brief([f"c{i}" for i in range(3000)])
    assert cut == "3000 values, e.g. ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', ...]"
