"""The memory bank: (user representation, next-item embedding) pairs, FAISS indexes, filtered top-K
retrieval."""
