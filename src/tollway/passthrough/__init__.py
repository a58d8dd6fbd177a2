"""Pass-through: requests Tollway forwards without knowing their API (files, batches, audio …).

The route (`api/passthrough.py`) is the thin door; this package decides what may go through:
which provider a request belongs to (`family`), the upstream path it may reach (`paths`),
the headers that travel (`headers`), whether its answer reports usage (`metering`), and the
links in an answer that must point at Tollway (`links`).
"""
