"""The on-disk embedding cache: keyed by text hash per encoder, atomic, encodes each missing text once."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rexground.errors import InputFileError
from rexground.text.embedding_cache import EmbeddingCache, text_key


class CountingEncoder:
    """A deterministic stand-in for SentenceEncoder that records what it was asked to encode."""

    def __init__(self, model_id: str = "a" * 64, dim: int = 8):
        self.model_id = model_id
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


def test_key_is_sha256_of_the_exact_text():
    assert text_key("Nodule") == hashlib.sha256(b"Nodule").hexdigest()
    assert text_key("Nodule") != text_key("nodule") != text_key("Nodule ")


def test_get_or_encode_returns_rows_in_order_and_encodes_each_text_once(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache.for_encoder(tmp_path, enc)
    texts = ["GGO in RLL", "Nodule", "GGO in RLL", "Effusion"]
    out = cache.get_or_encode(texts, enc)
    assert out.shape == (4, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out, enc.encode(texts))
    assert enc.calls[0] == ["GGO in RLL", "Nodule", "Effusion"]  # duplicates encoded once
    enc.calls.clear()
    again = cache.get_or_encode(["Effusion", "Nodule", "New text"], enc)
    assert enc.calls == [["New text"]]  # only the missing one
    np.testing.assert_array_equal(again[:2], out[[3, 1]])


def test_vectors_survive_a_new_cache_object_and_encoders_do_not_mix(tmp_path):
    a = CountingEncoder(model_id="a" * 64)
    b = CountingEncoder(model_id="b" * 64, dim=4)
    EmbeddingCache.for_encoder(tmp_path, a).get_or_encode(["Nodule"], a)
    assert "Nodule" in EmbeddingCache.for_encoder(tmp_path, a)
    cache_b = EmbeddingCache.for_encoder(tmp_path, b)
    assert "Nodule" not in cache_b
    assert cache_b.get_or_encode(["Nodule"], b).shape == (1, 4)
    with pytest.raises(ValueError, match="another encoder"):
        cache_b.get_or_encode(["Nodule"], a)


def test_writes_leave_no_temporary_files(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache.for_encoder(tmp_path, enc)
    cache.warm([f"finding {i}" for i in range(20)], enc, batch_size=7)
    files = list(tmp_path.rglob("*"))
    assert not [f for f in files if f.name.startswith(".tmp-")]
    assert len([f for f in files if f.suffix == ".npy"]) == 20
    assert cache.warm([f"finding {i}" for i in range(20)], enc) == 0


def test_a_damaged_file_is_an_error_naming_it(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache.for_encoder(tmp_path, enc)
    cache.get_or_encode(["Nodule"], enc)
    cache.path("Nodule").write_bytes(b"not an npy file")
    with pytest.raises(InputFileError, match="delete it"):
        cache.get("Nodule")
    np.save(cache.path("Nodule"), np.zeros(3, np.float32))
    with pytest.raises(InputFileError, match="expected"):
        cache.get("Nodule")


def test_put_refuses_a_vector_of_the_wrong_shape(tmp_path):
    cache = EmbeddingCache(tmp_path, "c" * 64, dim=8)
    with pytest.raises(ValueError, match="shape"):
        cache.put("x", np.zeros(5))
