"""rasekit: a reproducibility kit for RaSeRec (Retrieval-Augmented Sequential Recommendation, Zhao et
al., arXiv 2412.18378). `data` (datasets and the protocol), `models` (encoders, objectives, the RAM,
baselines), `memory` (the bank and retrieval), `stages` (the training loop, stage 1 and stage 2 as
tasks), `runs` (cached runs, the ledger, the plan), `analysis` and `report`; see README.md."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`from rasekit import RaSeRec` (and `Encoder`) without importing torch and FAISS for every command."""
    if name in ("RaSeRec", "Encoder"):
        from rasekit import raserec
        return getattr(raserec, name)
    raise AttributeError(f"module 'rasekit' has no attribute {name!r}")
