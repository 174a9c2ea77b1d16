"""The two text inputs of the network for a list of finding sentences: sentence embeddings and parsed
structure features, computed once per distinct sentence before training starts.

Embedders, chosen by ``InputSpec.text_encoder``:

* ``"minilm"``: the package's ONNX sentence encoder (``rexground.text.encoder.SentenceEncoder``), the one the
  exported model package ships; the one to train real models with.
* ``"hashing-test"``: ``rexground.infer.conditions.HashingTestEmbedder``, TEST-ONLY. A deterministic signed feature-hashing of words and
  word pairs into 384 dimensions. It needs no model files, so unit tests and CPU smoke runs work anywhere,
  but it knows no synonyms, so a network trained on it does not transfer to an exported package with the
  real encoder. It is only ever used when a config names it (the ``real`` config does not), and the
  name is recorded in every checkpoint (``config["input"]["text_encoder"]``) so that an export can refuse
  such a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rexground.infer.conditions import HASHING_TEST_EMBEDDER, TEXT_EMBEDDING_DIM, HashingTestEmbedder


def make_text_embedder(name: str):
    """An object with ``encode(list[str]) -> (N, 384) float32``."""
    if name == HASHING_TEST_EMBEDDER:
        return HashingTestEmbedder()
    if name == "minilm":
        from rexground.text.encoder import SentenceEncoder

        return SentenceEncoder()
    raise ValueError(f"unknown text encoder {name!r} (expected 'minilm' or {HASHING_TEST_EMBEDDER!r})")


def sentence_embeddings(
    texts: Sequence[str], encoder_name: str, cache_root: Path | None = None
) -> np.ndarray:
    """(N, 384) embeddings; with ``cache_root`` the real encoder's vectors are kept on disk
    (``rexground.text.embedding_cache``) so a resumed or repeated run does not re-encode 8,000 sentences."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, TEXT_EMBEDDING_DIM), np.float32)
    embedder = make_text_embedder(encoder_name)
    if cache_root is not None and encoder_name != HASHING_TEST_EMBEDDER:
        from rexground.text.embedding_cache import EmbeddingCache

        emb = EmbeddingCache.for_encoder(cache_root, embedder).get_or_encode(texts, embedder)
    else:
        emb = embedder.encode(texts)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.shape != (len(texts), TEXT_EMBEDDING_DIM):
        raise ValueError(
            f"text encoder {encoder_name!r} returned shape {emb.shape}, expected ({len(texts)}, 384)"
        )
    return emb


def structure_features(texts: Sequence[str]) -> np.ndarray:
    """Parsed-structure features (N, QUERY_FEATURE_DIM) from ``rexground.text``'s parser."""
    from rexground.text.features import batch_query_features
    from rexground.text.parser import parse_finding

    return batch_query_features([parse_finding(t) for t in texts])
