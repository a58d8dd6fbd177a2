"""The HTTP server edge: uvicorn with the per-connection limits it lacks (see protocol.py)."""
