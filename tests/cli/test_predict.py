"""`python -m reprotrain.cli.predict`: new data checked against the model schema, then predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import repo_params
from frames import customers, new_rows

from reprotrain.cli import predict
from reprotrain.config.errors import UserError
from reprotrain.config.paths import SCHEMA
from reprotrain.data import io
from reprotrain.data.schema import Schema
from reprotrain.models.model import build_model, load_model, save_model
from reprotrain.training import fitting
from stages import prepare, split


def train_model(root: Path, model: str, target: str = "label", task: str = "auto") -> Path:
    """prepare -> split -> fit the preprocessor and a model, as `train` does; its directory."""
    prepare.main()
    split.main()
    schema = Schema.read(SCHEMA)
    preprocessor, train, dev = fitting.load_train_dev(schema)
    params = repo_params.parse("train", {"model": model, "device": "cpu"})
    fitted = build_model(params, schema, seed=0)
    fitted.fit(train, dev)
    save_model(fitted, preprocessor, root / "models" / model)
    return root / "models" / model


@pytest.fixture
def classifier(workdir) -> Path:
    root = workdir({"prepare": {"source": "customers.csv", "target": "label"}})
    customers().to_csv(root / "customers.csv", index=False)
    return train_model(root, "logistic_regression")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"], ids=["csv", "parquet"])
def test_predicts_labels_and_probabilities(classifier: Path, suffix: str) -> None:
    new_rows().to_csv("new.csv", index=False)
    output = Path("out") / f"predictions{suffix}"
    predict.main(["--model", str(classifier), "--input", "new.csv", "--output", str(output)])
    result = pd.read_csv(output) if suffix == ".csv" else pd.read_parquet(output)
    assert list(result.columns) == ["prediction", "proba_churn", "proba_stay"]
    assert len(result) == 12
    assert set(result["prediction"]) <= {"churn", "stay"}
    assert np.allclose(result[["proba_churn", "proba_stay"]].sum(axis=1), 1.0, atol=1e-5)
    assert sorted(path.name for path in output.parent.iterdir()) == [output.name]  # no temp


def test_predictions_match_the_model_on_its_own_split(classifier: Path) -> None:
    """The same rows through predict and through the model in memory agree."""
    test = pd.read_parquet("data/split/test.parquet")
    test.to_parquet("test_rows.parquet")  # the target column may be present: it is ignored
    predict.main(["--model", str(classifier), "--input", "test_rows.parquet", "--output", "p.csv"])
    model = load_model(classifier)
    expected = model.predict(model.preprocessor.transform(test))
    classes = io.read_json(SCHEMA)["classes"]
    assert pd.read_csv("p.csv")["prediction"].tolist() == [classes[i] for i in expected]


def test_json_lines_input(classifier: Path) -> None:
    rows = new_rows(4)
    rows["signup"] = rows["signup"].dt.strftime("%Y-%m-%d")
    rows.to_json("new.jsonl", orient="records", lines=True)
    predict.main(["--model", str(classifier), "--input", "new.jsonl", "--output", "p.parquet"])
    assert len(pd.read_parquet("p.parquet")) == 4


def test_identifier_column_may_be_left_out(classifier: Path) -> None:
    """`email` was dropped as identifier-like: new data need not carry it."""
    new_rows(3).drop(columns=["email"]).to_csv("new.csv", index=False)
    predict.main(["--model", str(classifier), "--input", "new.csv", "--output", "p.csv"])
    assert len(pd.read_csv("p.csv")) == 3


def test_unseen_categories_warn_or_fail_under_strict(classifier: Path, caplog) -> None:
    rows = new_rows(3)
    rows.loc[0, "plan"] = "enterprise"
    rows.to_csv("new.csv", index=False)
    predict.main(["--model", str(classifier), "--input", "new.csv", "--output", "p.csv"])
    assert "column 'plan' has 1 values never seen in training ('enterprise')" in caplog.text
    with pytest.raises(
        UserError,
        match=r"new\.csv: column 'plan' has values never seen in training: 'enterprise'; "
        r"allowed under --strict: only training values",
    ):
        predict.main(
            ["--model", str(classifier), "--input", "new.csv", "--output", "s.csv", "--strict"]
        )
    assert not Path("s.csv").exists()


def test_regression_writes_values_only(workdir) -> None:
    root = workdir({"prepare": {"source": "sklearn:diabetes"}})
    model_dir = train_model(root, "linear_regression")
    pd.read_parquet("data/split/test.parquet").drop(columns="target").to_csv("x.csv", index=False)
    predict.main(["--model", str(model_dir), "--input", "x.csv", "--output", "y.csv"])
    result = pd.read_csv("y.csv")
    assert list(result.columns) == ["prediction"] and result["prediction"].between(0, 400).all()


def _damage_input(kind: str) -> tuple[list[str], str]:
    rows = new_rows(5)
    if kind == "missing-column":
        rows = rows.drop(columns=["spend"])
    elif kind == "extra-column":
        rows["coupon"] = "X1"
    elif kind == "wrong-type":
        rows = rows.astype({"visits": object})
        rows.loc[2, "visits"] = "many"
    elif kind == "bad-date":
        rows = rows.astype({"signup": object})
        rows.loc[1, "signup"] = "soon"
    rows.to_csv("new.csv", index=False)
    return ["--input", "new.csv", "--output", "out.csv"], kind


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param(
            "missing-column",
            r"new\.csv: missing feature column\(s\) 'spend'; the model expects: spend, visits",
            id="missing-column",
        ),
        pytest.param(
            "extra-column",
            r"new\.csv: unexpected column\(s\) 'coupon'; allowed: the model's feature columns "
            r"spend, visits, plan, newsletter, signup, email \(and the target 'label', ignored\)",
            id="extra-column",
        ),
        pytest.param(
            "wrong-type",
            r"new\.csv: column 'visits' must be numeric, got 'many' \(row 3\)",
            id="wrong-type",
        ),
        pytest.param(
            "bad-date",
            r"new\.csv: column 'signup' must be a date \(ISO 8601, e\.g\. 2024-01-31\), got "
            r"'soon' \(row 2\)",
            id="bad-date",
        ),
    ],
)
def test_input_checked_against_schema(classifier: Path, kind: str, message: str) -> None:
    args, _ = _damage_input(kind)
    Path("out.csv").write_text("previous\n")
    with pytest.raises(UserError, match=message):
        predict.main(["--model", str(classifier), *args])
    assert Path("out.csv").read_text() == "previous\n"  # untouched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--input", "new.csv", "--output", "p.xlsx"],
            r"--output: unsupported file type '\.xlsx' for p\.xlsx; allowed: \.csv, \.parquet",
            id="output-suffix",
        ),
        pytest.param(
            ["--input", "new.txt", "--output", "p.csv"],
            r"--input: unsupported file type '\.txt' for new\.txt; allowed: \.csv, \.parquet",
            id="input-suffix",
        ),
        pytest.param(
            ["--input", "absent.csv", "--output", "p.csv"],
            r"absent\.csv: data file not found",
            id="input-missing",
        ),
        pytest.param(
            ["--output", "p.csv"],
            r"reprotrain\.cli\.predict: the following arguments are required: --input; "
            r"usage: python -m reprotrain\.cli\.predict --model DIR --input FILE --output FILE",
            id="argument-missing",
        ),
    ],
)
def test_command_line_errors(classifier: Path, args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        predict.main(["--model", str(classifier), *args])
    assert not Path("p.csv").exists()


def test_model_without_schema_is_refused(classifier: Path) -> None:
    (classifier / "schema.json").unlink()
    new_rows(2).to_csv("new.csv", index=False)
    with pytest.raises(UserError, match=r"no schema\.json beside the model; allowed: a model"):
        predict.main(["--model", str(classifier), "--input", "new.csv", "--output", "p.csv"])


@pytest.mark.slow
def test_the_examples_are_new_digits_rows_a_digits_model_predicts(workdir) -> None:
    """examples/digits_rows.csv (for the predict command) and examples/serve_request.json
    (for `mlflow models serve`) hold the same five rows of the default dataset."""
    import json

    from project_copy import REPO_ROOT

    root = workdir({"prepare": {"source": "sklearn:digits", "target": None}})
    model_dir = train_model(root, "logistic_regression")
    rows = pd.read_csv(REPO_ROOT / "examples" / "digits_rows.csv")
    request = json.loads((REPO_ROOT / "examples" / "serve_request.json").read_text())
    split = request["dataframe_split"]
    assert pd.DataFrame(split["data"], columns=split["columns"]).equals(rows.astype(float))
    predict.main(
        [
            "--model",
            str(model_dir),
            "--input",
            str(REPO_ROOT / "examples" / "digits_rows.csv"),
            "--output",
            "p.csv",
        ]
    )
    predicted = pd.read_csv("p.csv")["prediction"].tolist()
    assert sum(p == t for p, t in zip(predicted, [9, 0, 8, 9, 8], strict=True)) >= 4
