"""Routing tests: Tollways with [[models]] in front of the fake provider."""
