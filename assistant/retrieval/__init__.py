"""Retrieval: dense sentence search and BM25 over passages, fused by rank, with a calibrated relevance."""
