"""The paper's analyses: functions that take finished runs (their ledger records and per-instance ranks)
and return tidy tables for the notebooks to show, save and plot."""
