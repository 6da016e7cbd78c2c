"""Sample frames shared by the unit and end-to-end tests of prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd


def customers(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Mixed kinds with gaps; the label depends on spend and plan."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    spend = rng.normal(50, 15, n)
    frame = pd.DataFrame(
        {
            "spend": spend,
            "visits": rng.integers(0, 30, n),
            "plan": plan,
            "newsletter": rng.choice(["true", "false"], n),
            "signup": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D"),
            "email": [f"user{i}@example.com" for i in range(n)],
        }
    )
    frame["label"] = np.where((spend > 50) | (plan == "pro"), "stay", "churn")
    frame.loc[rng.choice(n, n // 12, replace=False), "spend"] = np.nan
    frame.loc[rng.choice(n, n // 16, replace=False), "plan"] = None
    return frame


def new_rows(n: int = 12) -> pd.DataFrame:
    return customers(n, seed=5).drop(columns=["label"])
