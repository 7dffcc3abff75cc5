"""rasekit: a reproducibility kit for RaSeRec (Retrieval-Augmented Sequential Recommendation, Zhao et
al., arXiv 2412.18378). Stage 1 (`encoders`, `objectives`, `pretrain`), stage 2 (`memory`, `ram`,
`finetune`), evaluation, training loop, cached experiments and reports; see README.md."""

__version__ = "0.1.0"
