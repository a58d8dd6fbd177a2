"""Tollway: a self-hosted, metered LLM proxy."""

__version__ = "0.1.0"
