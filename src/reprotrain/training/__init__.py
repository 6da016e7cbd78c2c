"""Fit the configured model per seed on train, score it on dev; the learning curve."""
