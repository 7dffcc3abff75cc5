"""Runs as cached, configuration-hashed results: the ledger, stored weights, the user's own runs and the
reference, the run plan and its execution, provenance, profiles and paths."""
