"""Test-set evaluation: bootstrap intervals, curves (ROC, PR, calibration,
residuals), fit and champion verdicts.
"""
