"""Plots (matplotlib) and the Markdown report."""
