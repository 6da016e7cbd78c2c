"""The params keys dvc.yaml makes a stage depend on (`stages.<name>.params`).

DVC reruns a stage when a key it lists changes, and only then. A stage that reads a key it
does not list would be skipped with stale outputs after that key changes, so a stage whose
keys follow other params (tune reads the train keys that its space and `fixed` leave alone)
checks here that dvc.yaml lists every key it reads.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reprotrain.config.errors import UserError
from reprotrain.config.paths import DVC_FILE


def stage_params(stage: str, path: Path = DVC_FILE) -> list[str] | None:
    """The params.yaml keys (dotted; a section covers all its keys) dvc.yaml lists for
    `stage`, or None where there is no dvc.yaml (the library used outside the pipeline)."""
    if not path.is_file():
        return None
    try:
        stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as exc:
        raise UserError(f"{path}: not a valid dvc.yaml ({exc}); restore it with git") from None
    keys: list[str] = []
    for entry in (stages.get(stage) or {}).get("params", []):
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):  # {other_params_file: [keys]}: not params.yaml's keys
            continue
    return keys


def is_listed(key: str, listed: list[str]) -> bool:
    """Whether changing `key` reruns a stage listing `listed` (the key or a section above it)."""
    return any(key == entry or key.startswith(entry + ".") for entry in listed)


def check_listed(stage: str, keys: list[str], why: str, path: Path = DVC_FILE) -> None:
    """Every key in `keys` is listed for `stage` in dvc.yaml, else one line naming them."""
    listed = stage_params(stage, path)
    if listed is None:
        return
    missing = [key for key in keys if not is_listed(key, listed)]
    if missing:
        lines = " ".join(f"`- {key}`" for key in missing)
        raise UserError(
            f"{path}: stages.{stage}.params: does not list {', '.join(missing)}, which "
            f"{stage} reads ({why}), so changing it would not rerun {stage}; allowed: every "
            f"key {stage} reads is listed; add {lines} under stages.{stage}.params"
        )
