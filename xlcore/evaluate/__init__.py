"""Evaluators: each takes embeddings, a method's encode or a pipeline, and returns tidy numbers."""
