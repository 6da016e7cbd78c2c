"""Command-line argument types shared by the benchmarks (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1, else argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number >= 1 is allowed, got {text!r}")
    return value
