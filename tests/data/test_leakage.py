"""The leakage audit of the split: planted near-duplicate images, a noisy copy of the
target and a row index of a file sorted by the target are found and named; honest data
raises nothing; with the switches on, `split` fails in one line naming them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.config.paths import PREPARED_DATA, SCHEMA, SPLIT_FILES, SPLIT_METRICS
from reprotrain.data import datasets, io, leakage
from reprotrain.reporting import report
from stages import split


def write_prepared(frame: pd.DataFrame, target: str, task: str, shape=None) -> None:
    schema = datasets.build_schema(frame, target, task, "test", shape)
    io.write_parquet(PREPARED_DATA, frame)
    schema.write(SCHEMA)


def leaky_regression(n: int = 300) -> pd.DataFrame:
    """Two honest features; `leak`, the target plus a little noise; `row_id`, the row
    number of the file sorted by the target (the rows then shuffled)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = x @ np.array([1.0, -0.5]) + rng.normal(scale=1.0, size=n)
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": y})
    frame["leak"] = y + rng.normal(scale=0.02 * y.std(), size=n)
    frame = frame.sort_values("y", ignore_index=True)
    frame["row_id"] = np.arange(n)
    return frame.sample(frac=1, random_state=1, ignore_index=True)


def blocky_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """n random 16x16 two-tone images (8x8 blocks of 2x2 pixels), flattened."""
    blocks = rng.choice(np.array([20, 230], dtype=np.uint8), size=(n, 8, 8))
    return blocks.repeat(2, axis=1).repeat(2, axis=2).reshape(n, -1)


def test_noisy_copy_of_the_target_and_a_sorted_row_index_are_named(workdir) -> None:
    workdir()
    write_prepared(leaky_regression(), "y", "regression")
    split.main()
    audit = io.read_json(SPLIT_METRICS)["leakage"]
    suspects = {item["column"]: item["dev_score"] for item in audit["target_leak"]["suspects"]}
    assert set(suspects) == {"leak", "row_id"}
    assert min(suspects.values()) >= leakage.NEAR_PERFECT
    assert audit["target_leak"]["metric"] == "r2"
    assert audit["target_leak"]["all_features_dev_score"] > 0.9  # it uses the leak too
    (row_id,) = audit["identifiers"]["suspects"]
    assert row_id["column"] == "row_id"
    assert row_id["target_rank_correlation"] > 0.99
    assert abs(row_id["row_order_rank_correlation"]) < 0.3  # the rows were shuffled
    assert audit["identifiers"]["checked"] == ["row_id"]
    section = "\n".join(report.leakage_section(audit))
    assert "## Leakage audit (split)" in section
    assert "**suspected: `row_id` 0.99" in section or "**suspected: `leak` 0.99" in section
    assert "**`row_id` (target 1.00, row order" in section


def test_a_row_index_that_follows_the_file_order_is_named() -> None:
    frame = leaky_regression().drop(columns=["leak", "row_id"])
    frame["order_id"] = np.arange(len(frame)) * 3 + 1000
    codes = np.random.default_rng(0).integers(0, 3, len(frame)).astype(np.int8)
    schema = datasets.build_schema(frame, "y", "regression", "test", None)
    found = leakage.identifiers(frame, schema, schema.feature_names, codes)
    (entry,) = found["suspects"]
    assert entry["column"] == "order_id" and entry["row_order_rank_correlation"] == 1.0
    assert abs(entry["target_rank_correlation"]) < 0.3


def test_honest_data_has_no_suspects(classification_frame: pd.DataFrame) -> None:
    frame = classification_frame.copy()
    frame["f0"] += np.random.default_rng(1).normal(scale=3.0, size=len(frame))  # no feature alone
    frame["f1"] += np.random.default_rng(2).normal(scale=3.0, size=len(frame))  # is perfect
    frame["customer"] = [f"c{i:03d}" for i in np.random.default_rng(3).permutation(len(frame))]
    schema = datasets.build_schema(frame, "label", "classification", "test", None)
    codes = np.tile(np.array([0, 0, 0, 1, 2], dtype=np.int8), 18)
    result = leakage.audit(frame, schema, schema.feature_names, codes, seed=0)
    assert result["target_leak"]["suspects"] == []
    assert result["identifiers"] == {"checked": ["customer"], "suspects": []}
    assert result["near_duplicates"]["rows"] == 0
    assert leakage.findings(result) == {}


def test_near_duplicate_image_across_splits_is_found() -> None:
    rng = np.random.default_rng(0)
    pixels = blocky_images(30, rng)
    # Image 29 is image 3 again, a little darker and with pixel noise: not an exact copy.
    noise = rng.integers(-5, 6, size=pixels.shape[1])
    pixels[29] = np.clip(pixels[3].astype(int) - 10 + noise, 0, 255).astype(np.uint8)
    frame = pd.DataFrame(pixels, columns=[f"pixel_{i // 16}_{i % 16}" for i in range(256)])
    frame["label"] = np.arange(30) % 3
    schema = datasets.build_schema(frame, "label", "classification", "test", [1, 16, 16])
    codes = np.zeros(30, dtype=np.int8)
    codes[20:25], codes[25:] = 1, 2
    found = leakage.near_duplicates(frame, schema, schema.feature_names, codes)
    assert found["method"] == "image average hash (8x8)"
    assert found["rows"] == 2
    assert found["pairs"] == {"train_dev": 0, "train_test": 1, "dev_test": 0}
    assert found["examples"] == [{"train": 3, "test": 29}]


def test_near_duplicate_rows_after_normalisation() -> None:
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 1.0 + 1e-9, 4.0], "city": ["Paris", "Rome", " paris", "Oslo"]}
    )
    found = leakage.cross_split_matches(
        np.array([0, 0, 1, 2], dtype=np.int8), leakage.normalised_rows(frame)
    )
    assert found["rows"] == 2 and found["examples"] == [{"train": 0, "dev": 2}]


def test_switches_make_split_fail_in_one_line_naming_them(workdir) -> None:
    workdir({"split": {"fail_on_target_leak": True, "fail_on_identifiers": True}})
    write_prepared(leaky_regression(), "y", "regression")
    with pytest.raises(UserError) as caught:
        split.main()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "params.yaml: split.fail_on_target_leak, split.fail_on_identifiers: leakage in "
        "data/prepared/data.parquet: target leak: "
    )
    assert "'leak' (dev r2 0.99" in message and "'row_id' (dev r2 0.99" in message
    assert "'row_id' (rank correlation with the target 1.00" in message
    assert not any(path.exists() for path in SPLIT_FILES.values())


def test_excluded_columns_are_not_audited(workdir) -> None:
    workdir(
        {
            "split": {"fail_on_target_leak": True, "fail_on_identifiers": True},
            "features": {"exclude": ["leak", "row_id"]},
        }
    )
    write_prepared(leaky_regression(), "y", "regression")
    split.main()
    audit = io.read_json(SPLIT_METRICS)["leakage"]
    assert audit["target_leak"]["suspects"] == [] and audit["identifiers"]["suspects"] == []


def test_near_duplicate_switch_fails_split(workdir) -> None:
    workdir({"split": {"stratify": False, "fail_on_near_duplicates": True}})
    rng = np.random.default_rng(0)
    originals = blocky_images(40, rng)
    copies = np.clip(originals.astype(int) + rng.integers(-4, 5, originals.shape), 0, 255)
    frame = pd.DataFrame(
        np.vstack([originals, copies.astype(np.uint8)]),
        columns=[f"pixel_{i // 16}_{i % 16}" for i in range(256)],
    )
    frame["label"] = np.arange(80) % 2
    write_prepared(frame, "label", "classification", [1, 16, 16])
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: split\.fail_on_near_duplicates: leakage in "
        r"data/prepared/data\.parquet: "
        r"\d+ rows have a near-duplicate in another split \(image average hash \(8x8\); train/dev",
    ):
        split.main()
