"""Check every section of params.yaml: `python -m reprotrain.cli.check_params`.

`make repro` runs it before `dvc repro`, which removes a stage's outputs before running
it: a typo in params.yaml then fails here, with nothing removed. It also checks the tuning
space's values and that dvc.yaml lists every train key tune reads (see config/wiring.py).
"""

from __future__ import annotations

import logging
from typing import cast

from reprotrain import config
from reprotrain.config.errors import run_stage
from reprotrain.config.params import PARAMS_FILE, SECTIONS, TrainParams, TuneParams
from reprotrain.tuning import runner

log = logging.getLogger(__name__)


def main() -> None:
    loaded = dict(zip(SECTIONS, config.load(*SECTIONS), strict=True))
    train_params, tune_params = cast(TrainParams, loaded["train"]), cast(TuneParams, loaded["tune"])
    runner.check_before_data(train_params, tune_params)
    log.info("%s: every section valid (%s)", PARAMS_FILE, ", ".join(SECTIONS))


if __name__ == "__main__":
    run_stage(main)
