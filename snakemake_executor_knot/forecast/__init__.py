"""Forecasts of a run from earlier runs' records: ``knot plan`` and the budget's estimate of
what a job will cost."""
