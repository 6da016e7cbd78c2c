"""Reporting: bootstrap intervals, curve tables, plots and the Markdown report of the test
evaluation; run by evaluate, the one stage that lists this folder as a dependency in dvc.yaml.
train and tune import `plots` only to draw MLflow figures, which no DVC output depends on.
This file imports nothing.
"""
