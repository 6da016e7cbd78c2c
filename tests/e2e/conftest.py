"""End-to-end runs of the real pipeline (`dvc repro`, stages as commands, the MLflow UI):
every test in this folder counts as `e2e` (or `ui`), so the fast lane leaves it out."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and not item.get_closest_marker("ui"):
            item.add_marker(pytest.mark.e2e)
