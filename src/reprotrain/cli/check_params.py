"""Check every section of params.yaml: `python -m reprotrain.cli.check_params`.

`make repro` runs it before `dvc repro`, which removes a stage's outputs before running
it: a typo in params.yaml then fails here, with nothing removed.
"""

from __future__ import annotations

import logging

from reprotrain import config
from reprotrain.config.errors import run_stage
from reprotrain.config.params import PARAMS_FILE, SECTIONS

log = logging.getLogger(__name__)


def main() -> None:
    config.load(*SECTIONS)
    log.info("%s: every section valid (%s)", PARAMS_FILE, ", ".join(SECTIONS))


if __name__ == "__main__":
    run_stage(main)
