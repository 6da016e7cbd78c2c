"""Core: what every stage runs. Params (`config`), errors, file I/O, the pipeline's paths,
tabular reading and dataset loading; run by all five DVC stages (prepare, split, train, tune,
evaluate), which list this folder as a dependency in dvc.yaml. Nothing here imports torch or
MLflow at the top, and this file imports nothing: `prepare` and `split` import this package.
"""
