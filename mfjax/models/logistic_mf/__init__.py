"""Logistic matrix factorization for implicit feedback (Johnson 2014): objective (work in progress)."""
