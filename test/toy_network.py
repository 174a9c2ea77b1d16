"""A toy encoder/decoder pair built with onnx.helper, and a model package around it (no torch).

The decoder's answer is known in closed form: logits = image * sum(text_embedding) + sum(query_features)
at every voxel, so a sliding window that misplaces, drops or mis-weights a tile cannot reproduce it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rexground.infer.package import (
    FORMAT_VERSION,
    GraphPair,
    IntensityNormalisation,
    Manifest,
    hash_files,
    write_manifest,
)

TEXT_DIM = 6
QUERY_DIM = 3


def toy_encoder(patch: tuple[int, int, int], channels: int = 1) -> onnx.ModelProto:
    """image -> (skip0 = image channel 0, skip1 = 2x average-pooled image channel 0)."""
    nodes = [
        helper.make_node("Slice", ["image", "c_start", "c_end", "c_axis"], ["ct"]),
        helper.make_node("Identity", ["ct"], ["skip0"]),
        helper.make_node("AveragePool", ["ct"], ["skip1"], kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
    ]
    pz, py, px = patch
    graph = helper.make_graph(
        nodes,
        "toy_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, pz, py, px])],
        [
            helper.make_tensor_value_info("skip0", TensorProto.FLOAT, ["batch", 1, pz, py, px]),
            helper.make_tensor_value_info(
                "skip1", TensorProto.FLOAT, ["batch", 1, pz // 2, py // 2, px // 2]
            ),
        ],
        initializer=[
            numpy_helper.from_array(np.array([0], dtype=np.int64), "c_start"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "c_end"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "c_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def toy_decoder(patch: tuple[int, int, int], with_query: bool = True) -> onnx.ModelProto:
    """logits = skip0 * sum(text) + sum(query) (+ 0 * mean(skip1), so the second skip is really consumed)."""
    pz, py, px = patch
    nodes = [
        helper.make_node("ReduceSum", ["text_embedding", "axis1"], ["a"], keepdims=1),
        helper.make_node("Reshape", ["a", "shape5"], ["a5"]),
        helper.make_node("Mul", ["skip0", "a5"], ["scaled"]),
        helper.make_node("ReduceMean", ["skip1"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Add", ["scaled", "m0"], ["s1"]),
    ]
    inputs = [
        helper.make_tensor_value_info("skip0", TensorProto.FLOAT, ["batch", 1, pz, py, px]),
        helper.make_tensor_value_info("skip1", TensorProto.FLOAT, ["batch", 1, pz // 2, py // 2, px // 2]),
        helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", TEXT_DIM]),
    ]
    if with_query:
        nodes += [
            helper.make_node("ReduceSum", ["query_features", "axis1"], ["b"], keepdims=1),
            helper.make_node("Reshape", ["b", "shape5"], ["b5"]),
            helper.make_node("Add", ["s1", "b5"], ["logits"]),
        ]
        inputs.append(
            helper.make_tensor_value_info("query_features", TensorProto.FLOAT, ["batch", QUERY_DIM])
        )
    else:
        nodes.append(helper.make_node("Identity", ["s1"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "toy_decoder",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, pz, py, px])],
        initializer=[
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([-1, 1, 1, 1, 1], dtype=np.int64), "shape5"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def toy_expected_logits(image: np.ndarray, text: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(C, Z, Y, X) image, (F, D) text, (F, Q) query -> (F, Z, Y, X) exact logits of the toy network."""
    a = text.sum(axis=1)
    b = query.sum(axis=1) if query.size else np.zeros(len(text))
    return np.stack([image[0] * ai + bi for ai, bi in zip(a, b, strict=True)]).astype(np.float32)


def write_toy_package(
    root: Path,
    patch: tuple[int, int, int] = (8, 8, 8),
    *,
    target_spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    threshold: float = 0.5,
    norm: IntensityNormalisation | None = None,
) -> Manifest:
    """A complete, hash-pinned package folder with the toy graphs as its fp32 variant (no text encoder)."""
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(toy_encoder(patch), root / "encoder.fp32.onnx")
    onnx.save(toy_decoder(patch), root / "decoder.fp32.onnx")
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        patch_size=patch,
        target_spacing=target_spacing,
        normalisation=norm or IntensityNormalisation(),
        threshold=threshold,
        text_embedding_dim=TEXT_DIM,
        query_feature_dim=QUERY_DIM,
        text_embedder="hashing-test",
        text_encoder=None,
        query_feature_version=1,
        graphs={
            "fp32": GraphPair(
                encoder="encoder.fp32.onnx", decoder="decoder.fp32.onnx", encoder_outputs=("skip0", "skip1")
            )
        },
        files=hash_files(root),
    )
    write_manifest(root, manifest)
    return manifest
