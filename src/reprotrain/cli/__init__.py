"""Command-line tools beside the pipeline: `python -m reprotrain.cli.predict`."""
