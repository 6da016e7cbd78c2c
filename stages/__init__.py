"""reprotrain: a reproducible training pipeline, one module per DVC stage."""
