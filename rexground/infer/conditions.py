"""Finding sentences -> the decoder's two text inputs: sentence embeddings and parsed-structure features.

The embedder is the one the package was trained with (its manifest says which): the ONNX sentence encoder
shipped in the package, or, for smoke-test packages only, the hashing embedder that needs no files.
The structure features come from the finding parser; their layout version must match the package's.
Training builds its text tables with these same embedders (``rexground.train.text_inputs``).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rexground.errors import ModelPackageError
from rexground.infer.package import MANIFEST_NAME, ModelPackage
from rexground.text.query import FindingQuery

TEXT_EMBEDDING_DIM = 384  # all-MiniLM-L6-v2 class sentence encoders
HASHING_TEST_EMBEDDER = "hashing-test"
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Conditions:
    """Per-finding decoder inputs: sentence embeddings (F, D) and parsed-query features (F, Q)."""

    text_embedding: np.ndarray
    query_features: np.ndarray

    def __post_init__(self) -> None:
        self.text_embedding = np.ascontiguousarray(self.text_embedding, dtype=np.float32)
        self.query_features = np.ascontiguousarray(self.query_features, dtype=np.float32)
        if self.text_embedding.ndim != 2 or self.query_features.ndim != 2:
            raise ValueError("conditions must be (F, D) and (F, Q) arrays")
        if len(self.text_embedding) != len(self.query_features):
            raise ValueError("text embeddings and query features disagree on the number of findings")

    @property
    def n_findings(self) -> int:
        return len(self.text_embedding)


class HashingTestEmbedder:
    """TEST-ONLY sentence embedder: unit-norm signed hashing of words and word pairs into ``dim`` values.

    It needs no model files, so unit tests and CPU smoke runs work anywhere, but it knows no synonyms: a
    network trained on it does not transfer to the real encoder. Packages say when they use it
    (``Manifest.text_embedder == "hashing-test"``) and the export refuses such runs unless told otherwise.
    """

    name = HASHING_TEST_EMBEDDER

    def __init__(self, dim: int = TEXT_EMBEDDING_DIM):
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return words + [f"{a}_{b}" for a, b in itertools.pairwise(words)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out


class TextConditioner:
    """Embeds and parses findings exactly as the package's network expects them."""

    def __init__(self, package: ModelPackage):
        from rexground.text.features import QUERY_FEATURE_DIM, QUERY_FEATURE_VERSION

        m = package.manifest
        where = package.root / MANIFEST_NAME
        if m.query_feature_version != QUERY_FEATURE_VERSION or m.query_feature_dim != QUERY_FEATURE_DIM:
            raise ModelPackageError(
                f"{where}: query features v{m.query_feature_version} ({m.query_feature_dim} values) do not match "
                f"this rexground's v{QUERY_FEATURE_VERSION} ({QUERY_FEATURE_DIM}): re-export with this version"
            )
        self.package = package
        self.dim = m.text_embedding_dim
        if m.text_embedder == HASHING_TEST_EMBEDDER:
            self._embedder = HashingTestEmbedder(self.dim)
        else:
            from rexground.text.encoder import SentenceEncoder

            assert package.text_encoder_dir is not None
            self._embedder = SentenceEncoder(package.text_encoder_dir)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        emb = np.asarray(self._embedder.encode(list(texts)), dtype=np.float32)
        if emb.shape != (len(texts), self.dim):
            raise ModelPackageError(
                f"{self.package.root / MANIFEST_NAME}: the text encoder returned {emb.shape}, "
                f"expected ({len(texts)}, {self.dim})"
            )
        return emb

    def conditions(self, queries: Sequence[FindingQuery]) -> Conditions:
        """Decoder inputs for parsed findings (the sentence of each is ``query.text``)."""
        from rexground.text.features import batch_query_features

        queries = list(queries)
        return Conditions(self.embed([q.text for q in queries]), batch_query_features(queries))
