"""Finding sentences -> the decoder's two text inputs: sentence embeddings and parsed-structure features.

The embedder is the one the package was trained with (its manifest says which): the ONNX sentence encoder
shipped in the package, or, for smoke-test packages only, the hashing embedder that needs no files.
The structure features come from the finding parser; their layout version must match the package's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rexground.errors import ModelPackageError
from rexground.infer.onnx_session import Conditions
from rexground.model_package import MANIFEST_NAME, ModelPackage
from rexground.text.query import FindingQuery


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
        if m.text_embedder == "hashing-test":
            from rexground.train.text_inputs import HashingTestEmbedder  # torch-free (numpy + hashlib)

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

    def conditions(self, texts: Sequence[str], queries: Sequence[FindingQuery] | None = None) -> Conditions:
        """Decoder inputs for the findings; ``queries`` are parsed here when not given."""
        from rexground.text.features import batch_query_features

        if queries is None:
            from rexground.text.parser import parse_finding

            queries = [parse_finding(t) for t in texts]
        return Conditions(self.embed(texts), batch_query_features(list(queries)))
