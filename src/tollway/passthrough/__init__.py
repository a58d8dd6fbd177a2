"""Pass-through: requests Tollway forwards without knowing their API (files, batches, audio …).

The route (`api/passthrough.py`) is the thin door; this package decides what may go through:
which provider a request belongs to (`family`), the upstream path it may reach (`paths`),
the headers that travel (`headers`), and whether its answer reports usage (`metering`).
"""
