"""A trained GroundingNet as two ONNX graphs, and their fp16 variant (torch, export time only).

The network is split where the text enters: ``encode_image`` becomes the encoder graph (run once per tile)
and ``decode`` the decoder graph (run once per finding per tile on the encoder's skip tensors). Both have a
fixed patch shape and a dynamic batch. The fp16 variant is made from the fp32 graphs with every
normalisation layer kept in fp32 (fp16 variance of a 3D feature map overflows or loses the mean); casts
sit at the boundaries, and graph inputs and outputs stay fp32 so both variants share one calling code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from rexground.export import ExportError
from rexground.infer.package import GraphPair
from rexground.infer.sliding_window import Shape3

OPSET = 17
IMAGE_INPUT = "image"
TEXT_INPUT = "text_embedding"
QUERY_INPUT = "query_features"
LOGITS_OUTPUT = "logits"
# Normalisation ops whose statistics must be computed in fp32 in the fp16 variant.
KEEP_FP32_OPS = ("InstanceNormalization", "BatchNormalization", "LayerNormalization", "GroupNormalization")


class _EncoderGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.encode_image(image)


class _DecoderGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.net.decode(*args)


def export_fp32(
    net: nn.Module, out_dir: Path, *, patch_size: Shape3, in_channels: int, text_dim: int, query_dim: int
) -> GraphPair:
    """Write ``encoder.fp32.onnx`` and ``decoder.fp32.onnx`` (fixed patch shape, dynamic batch)."""
    net = net.eval().cpu()
    image = torch.zeros(2, in_channels, *patch_size)
    with torch.inference_mode():
        feats = net.encode_image(image)
    skip_names = tuple(f"skip{i}" for i in range(len(feats)))
    enc_name, dec_name = "encoder.fp32.onnx", "decoder.fp32.onnx"
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            _EncoderGraph(net), (image,), str(out_dir / enc_name), input_names=[IMAGE_INPUT],
            output_names=list(skip_names), opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={IMAGE_INPUT: batch, **{n: batch for n in skip_names}},
        )  # fmt: skip
        feats = tuple(f.clone() for f in feats)
        dec_args = (*feats, torch.zeros(2, text_dim), torch.zeros(2, query_dim))
        dec_inputs = [*skip_names, TEXT_INPUT, QUERY_INPUT]
        torch.onnx.export(
            _DecoderGraph(net), dec_args, str(out_dir / dec_name), input_names=dec_inputs,
            output_names=[LOGITS_OUTPUT], opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={**{n: batch for n in dec_inputs}, LOGITS_OUTPUT: batch},
        )  # fmt: skip
    for name in (enc_name, dec_name):
        onnx.checker.check_model(str(out_dir / name))
    return GraphPair(
        encoder=enc_name, decoder=dec_name, encoder_input=IMAGE_INPUT, encoder_outputs=skip_names,
        decoder_text_input=TEXT_INPUT, decoder_query_input=QUERY_INPUT, decoder_output=LOGITS_OUTPUT,
    )  # fmt: skip


def convert_fp16(src: Path, dst: Path) -> None:
    """fp32 graph -> fp16 graph with normalisation ops and graph I/O kept in fp32 (onnxconverter-common)."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # an export-time extra, never needed at inference
        raise ExportError(
            "the fp16 variant needs onnxconverter-common: pip install onnxconverter-common"
        ) from exc
    model = _separate_consumed_outputs(_fold_identity_initializers(onnx.load(str(src))))
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(KEEP_FP32_OPS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values truncated to fp16" notes for tiny weights
        half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))


def _fold_identity_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace ``Identity(initializer)`` nodes (the TorchScript exporter's way of sharing a weight) by a copy
    of the initializer under the output's name: the fp16 converter would retype the weight but not the
    Identity's output, and onnxruntime then refuses the graph."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    del graph.value_info[:]  # stale types; onnxruntime re-infers them
    return model


def _separate_consumed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A graph output that other nodes also read (the encoder's skips feed the next stage) gets an inner
    name plus a final Identity: with ``keep_io_types`` the converter casts outputs back to fp32 in place,
    and the inner readers would otherwise be handed the fp32 tensor."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumed = {i for n in graph.node for i in n.input} & outputs
    if not consumed:
        return model
    inner = {name: f"{name}__inner" for name in consumed}
    for node in graph.node:
        for k, name in enumerate(node.output):
            if name in inner:
                node.output[k] = inner[name]
        for k, name in enumerate(node.input):
            if name in inner:
                node.input[k] = inner[name]
    for name, inner_name in inner.items():
        graph.node.append(onnx.helper.make_node("Identity", [inner_name], [name], name=f"{name}__output"))
    return model


def fp16_pair(fp32: GraphPair, out_dir: Path) -> GraphPair:
    enc, dec = "encoder.fp16.onnx", "decoder.fp16.onnx"
    convert_fp16(out_dir / fp32.encoder, out_dir / enc)
    convert_fp16(out_dir / fp32.decoder, out_dir / dec)
    return fp32.model_copy(update={"encoder": enc, "decoder": dec})
