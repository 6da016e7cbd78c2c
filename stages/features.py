"""Feature preprocessing, fit on the training split only and saved with every model.

Dev, test and new data go through the same fitted transform as train, so nothing of
their distribution leaks into training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.errors import UserError

FILE = "preprocessor.skops"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.")


class Preprocessor:
    """Feature columns of a frame -> a float32 matrix (missing values imputed)."""

    def __init__(self, transformer: Any, columns: list[str]):
        self.transformer, self.columns = transformer, columns

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [column for column in self.columns if column not in frame.columns]
        if missing:
            raise UserError(
                f"input: missing feature column(s) {', '.join(map(repr, missing[:5]))}; "
                f"the model expects: {', '.join(self.columns[:10])}"
            )
        matrix = self.transformer.transform(frame[self.columns])
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def save(self, directory: Path) -> None:
        import skops.io as sio

        directory.mkdir(parents=True, exist_ok=True)
        sio.dump({"transformer": self.transformer, "columns": self.columns}, directory / FILE)


def fit_preprocessor(train: pd.DataFrame, schema: dict[str, Any]) -> Preprocessor:
    """Fit the feature transform on the training split."""
    from sklearn.impute import SimpleImputer

    columns = [feature["name"] for feature in schema["features"]]
    transformer = SimpleImputer(strategy="median", keep_empty_features=True)
    transformer.fit(train[columns])
    return Preprocessor(transformer, columns)


def load_preprocessor(directory: Path) -> Preprocessor:
    import skops.io as sio

    path = Path(directory) / FILE
    try:
        untrusted = sio.get_untrusted_types(file=path)
        refused = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
        if refused:
            raise UserError(
                f"{path}: refusing to load; it holds types outside the allow-list: "
                f"{', '.join(refused[:3])}"
            )
        state = sio.load(path, trusted=untrusted)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decode failure means a bad file
        raise UserError(
            f"{path}: corrupt or unreadable preprocessor ({type(exc).__name__})"
        ) from None
    return Preprocessor(state["transformer"], state["columns"])
