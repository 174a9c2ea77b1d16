"""onnxruntime backends for the sliding window: CPU with host accumulation, CUDA with IOBinding.

On CUDA the tile batch is copied to the device once, the encoder's skip tensors stay there as OrtValues
and are bound straight into the decoder (once per finding), and the decoder's logits are added into
per-finding accumulators on the device by a tiny ONNX graph (gather tile -> multiply by the importance
map -> pad to the volume -> add), ping-ponging between two buffers so no input is ever written in place.
Only the final sums cross back to the host, once per finding. The same IOBinding code runs on the CPU
execution provider too, which is how it is tested on machines without a GPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from rexground.errors import RexgroundError
from rexground.infer.conditions import Conditions
from rexground.infer.package import GraphPair, ModelPackage
from rexground.infer.sliding_window import HostAccumulator, Shape3

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
_NP_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class DeviceError(RexgroundError):
    """The requested device cannot be used (e.g. CUDA asked for, but onnxruntime has no CUDA provider)."""


def cuda_available() -> bool:
    return CUDA_PROVIDER in ort.get_available_providers()


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when onnxruntime has a CUDA provider, else 'cpu'; 'cuda' without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(
            f"device 'cuda' requested but onnxruntime {ort.__version__} has no {CUDA_PROVIDER} "
            f"(available: {ort.get_available_providers()}); install onnxruntime-gpu or use --device cpu"
        )
    return "cpu"


def cuda_provider_options(device_id: int = 0) -> dict[str, str]:
    # Fixed tile shapes (the last batch is padded to full size) make an exhaustive cuDNN search pay once.
    return {
        "device_id": str(device_id),
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "cudnn_conv_use_max_workspace": "1",
        "do_copy_in_default_stream": "1",
    }


def make_session(
    path: str | os.PathLike, device: str, *, threads: int | None = None, device_id: int = 0
) -> ort.InferenceSession:
    """An InferenceSession on 'cpu' or 'cuda'. Raises DeviceError if CUDA was asked for but did not load."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    if device == "cuda":
        providers: list[Any] = [(CUDA_PROVIDER, cuda_provider_options(device_id)), CPU_PROVIDER]
    else:
        providers = [CPU_PROVIDER]
    sess = ort.InferenceSession(os.fspath(path), sess_options=opts, providers=providers)
    if device == "cuda" and sess.get_providers()[0] != CUDA_PROVIDER:
        # onnxruntime silently drops a provider whose libraries (CUDA, cuDNN) do not load.
        raise DeviceError(f"{path}: {CUDA_PROVIDER} did not load (providers: {sess.get_providers()})")
    return sess


def _input_dtype(sess: ort.InferenceSession, name: str) -> np.dtype:
    for i in sess.get_inputs():
        if i.name == name:
            return np.dtype(_NP_OF_ORT.get(i.type, np.float32))
    raise RexgroundError(f"graph has no input {name!r} (inputs: {[i.name for i in sess.get_inputs()]})")


class _GraphIO:
    """The names and dtypes of a graph pair's tensors, read from the sessions."""

    def __init__(self, encoder: ort.InferenceSession, decoder: ort.InferenceSession, pair: GraphPair):
        self.pair = pair
        self.image_dtype = _input_dtype(encoder, pair.encoder_input)
        dec_inputs = {i.name for i in decoder.get_inputs()}
        missing = [n for n in pair.encoder_outputs if n not in dec_inputs]
        if missing:
            raise RexgroundError(f"decoder graph lacks the skip inputs {missing}")
        self.feature_dtypes = [_input_dtype(decoder, n) for n in pair.encoder_outputs]
        self.text_dtype = _input_dtype(decoder, pair.decoder_text_input)
        # A network trained without query features has no such input; then the features are ignored.
        self.has_query = pair.decoder_query_input in dec_inputs
        self.query_dtype = _input_dtype(decoder, pair.decoder_query_input) if self.has_query else None
        out_types = {o.name: o.type for o in decoder.get_outputs()}
        if pair.decoder_output not in out_types:
            raise RexgroundError(f"decoder graph has no output {pair.decoder_output!r}")
        self.logits_dtype = np.dtype(_NP_OF_ORT.get(out_types[pair.decoder_output], np.float32))


class CpuOrtBackend:
    """onnxruntime with numpy in and out; weighted logits summed on the host."""

    device = "cpu"

    def __init__(self, encoder: ort.InferenceSession, decoder: ort.InferenceSession, pair: GraphPair):
        self.encoder, self.decoder, self.pair = encoder, decoder, pair
        self.io = _GraphIO(encoder, decoder, pair)
        self.acc = HostAccumulator()
        self.conditions: Conditions | None = None

    def set_conditions(self, conditions: Conditions) -> None:
        self.conditions = conditions

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        self.acc.start(volume_shape, n_findings, importance)

    def encode(self, tiles: np.ndarray) -> list[np.ndarray]:
        feed = {self.pair.encoder_input: tiles.astype(self.io.image_dtype, copy=False)}
        return self.encoder.run(list(self.pair.encoder_outputs), feed)

    def decoder_feed(self, features: Sequence[np.ndarray], finding: int) -> dict[str, np.ndarray]:
        assert self.conditions is not None, "set_conditions() first"
        b = len(features[0])
        feed = {
            name: feat.astype(dt, copy=False)
            for name, feat, dt in zip(
                self.pair.encoder_outputs, features, self.io.feature_dtypes, strict=True
            )
        }
        feed[self.pair.decoder_text_input] = np.repeat(
            self.conditions.text_embedding[finding : finding + 1], b, axis=0
        ).astype(self.io.text_dtype, copy=False)
        if self.io.has_query:
            feed[self.pair.decoder_query_input] = np.repeat(
                self.conditions.query_features[finding : finding + 1], b, axis=0
            ).astype(self.io.query_dtype, copy=False)
        return feed

    def decode(self, features: Sequence[np.ndarray], finding: int) -> np.ndarray:
        return self.decoder.run([self.pair.decoder_output], self.decoder_feed(features, finding))[0]

    def decode_accumulate(
        self, features: Sequence[np.ndarray], finding: int, starts: Sequence[Shape3]
    ) -> None:
        logits = self.decode(features, finding)
        self.acc.add(finding, logits.astype(np.float32, copy=False), starts)

    def finish(self) -> np.ndarray:
        return self.acc.finish()


def build_accumulate_graph(
    patch_size: Shape3, importance: np.ndarray, logits_dtype: np.dtype
) -> onnx.ModelProto:
    """acc_out = acc + pad(importance * logits[index], pads): one tile's weighted logits into the volume."""
    pz, py, px = patch_size
    elem = TensorProto.FLOAT16 if np.dtype(logits_dtype) == np.float16 else TensorProto.FLOAT
    nodes = [helper.make_node("Gather", ["logits", "index"], ["tile"], axis=0)]
    tile = "tile"
    if elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["tile"], ["tile_f32"], to=TensorProto.FLOAT))
        tile = "tile_f32"
    nodes += [
        helper.make_node("Reshape", [tile, "patch_shape"], ["tile3"]),
        helper.make_node("Mul", ["tile3", "importance"], ["weighted"]),
        helper.make_node("Pad", ["weighted", "pads"], ["placed"], mode="constant"),
        helper.make_node("Add", ["acc", "placed"], ["acc_out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "accumulate_tile",
        inputs=[
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, ["Z", "Y", "X"]),
            helper.make_tensor_value_info("logits", elem, ["B", 1, pz, py, px]),
            helper.make_tensor_value_info("index", TensorProto.INT64, []),
            helper.make_tensor_value_info("pads", TensorProto.INT64, [6]),
        ],
        outputs=[helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, ["Z", "Y", "X"])],
        initializer=[
            numpy_helper.from_array(np.asarray(importance, dtype=np.float32), "importance"),
            numpy_helper.from_array(np.asarray([pz, py, px], dtype=np.int64), "patch_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@dataclass
class _DeviceState:
    accumulators: list[Any] = field(default_factory=list)  # one OrtValue (Z, Y, X) float32 per finding
    spare: Any = None  # the ping-pong partner of whichever accumulator is being updated
    shape: Shape3 = (0, 0, 0)


class IoBindingOrtBackend:
    """onnxruntime with IOBinding: tiles, features, logits and sums stay on ``device_type`` ('cuda' or 'cpu').

    Batches are padded to ``batch_size`` (the padding tiles' outputs are ignored) so every call has the
    same shapes, which keeps cuDNN's algorithm cache and onnxruntime's memory arena warm.
    """

    def __init__(
        self,
        encoder: ort.InferenceSession,
        decoder: ort.InferenceSession,
        pair: GraphPair,
        *,
        batch_size: int,
        device_type: str = "cuda",
        device_id: int = 0,
        threads: int | None = None,
    ):
        self.encoder, self.decoder, self.pair = encoder, decoder, pair
        self.io = _GraphIO(encoder, decoder, pair)
        self.batch_size = int(batch_size)
        self.device = device_type
        self.device_id = device_id
        self.threads = threads
        self.conditions: Conditions | None = None
        self._cond_values: list[tuple[Any, Any]] = []
        self._state = _DeviceState()
        self._acc_session: ort.InferenceSession | None = None
        self._acc_key: tuple | None = None
        self._logits_value: Any = None
        self._patch: Shape3 = (0, 0, 0)

    def _ortvalue(self, array: np.ndarray) -> Any:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, self.device_id)

    def set_conditions(self, conditions: Conditions) -> None:
        self.conditions = conditions
        self._cond_values = []
        for f in range(conditions.n_findings):
            text = np.repeat(conditions.text_embedding[f : f + 1], self.batch_size, axis=0).astype(
                self.io.text_dtype
            )
            query = None
            if self.io.has_query:
                query = self._ortvalue(
                    np.repeat(conditions.query_features[f : f + 1], self.batch_size, axis=0).astype(
                        self.io.query_dtype
                    )
                )
            self._cond_values.append((self._ortvalue(text), query))

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        patch: Shape3 = tuple(importance.shape)  # type: ignore[assignment]
        key = (patch, str(self.io.logits_dtype))
        if self._acc_key != key:
            model = build_accumulate_graph(patch, importance, self.io.logits_dtype)
            self._acc_session = make_session_from_model(
                model, self.device, threads=self.threads, device_id=self.device_id
            )
            self._acc_key = key
        self._patch = patch
        # A fresh host array per buffer: on the CPU provider an OrtValue wraps the numpy memory itself.
        self._state = _DeviceState(
            accumulators=[self._ortvalue(np.zeros(volume_shape, np.float32)) for _ in range(n_findings)],
            spare=self._ortvalue(np.zeros(volume_shape, np.float32)),
            shape=volume_shape,
        )
        self._logits_value = ort.OrtValue.ortvalue_from_shape_and_type(
            [self.batch_size, 1, *patch], self.io.logits_dtype, self.device, self.device_id
        )

    def encode(self, tiles: np.ndarray) -> tuple[list[Any], int]:
        n = len(tiles)
        if n > self.batch_size:
            raise ValueError(f"batch of {n} tiles exceeds the backend's batch size {self.batch_size}")
        if n < self.batch_size:  # repeat the last tile so every call has the same shape
            tiles = np.concatenate([tiles, np.repeat(tiles[-1:], self.batch_size - n, axis=0)])
        binding = self.encoder.io_binding()
        binding.bind_ortvalue_input(
            self.pair.encoder_input, self._ortvalue(tiles.astype(self.io.image_dtype, copy=False))
        )
        for name in self.pair.encoder_outputs:
            binding.bind_output(name, self.device, self.device_id)
        self.encoder.run_with_iobinding(binding)
        return binding.get_outputs(), n

    def decode_accumulate(
        self, features: tuple[list[Any], int], finding: int, starts: Sequence[Shape3]
    ) -> None:
        values, n_real = features
        text_value, query_value = self._cond_values[finding]
        binding = self.decoder.io_binding()
        for name, value in zip(self.pair.encoder_outputs, values, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_ortvalue_input(self.pair.decoder_text_input, text_value)
        if query_value is not None:
            binding.bind_ortvalue_input(self.pair.decoder_query_input, query_value)
        binding.bind_ortvalue_output(self.pair.decoder_output, self._logits_value)
        self.decoder.run_with_iobinding(binding)
        self._accumulate(finding, starts[:n_real])

    def _accumulate(self, finding: int, starts: Sequence[Shape3]) -> None:
        assert self._acc_session is not None
        state = self._state
        Z, Y, X = state.shape
        pz, py, px = self._patch
        for b, (z, y, x) in enumerate(starts):
            pads = np.array([z, y, x, Z - z - pz, Y - y - py, X - x - px], dtype=np.int64)
            binding = self._acc_session.io_binding()
            binding.bind_ortvalue_input("acc", state.accumulators[finding])
            binding.bind_ortvalue_input("logits", self._logits_value)
            binding.bind_cpu_input("index", np.array(b, dtype=np.int64))
            binding.bind_cpu_input("pads", pads)
            binding.bind_ortvalue_output("acc_out", state.spare)
            self._acc_session.run_with_iobinding(binding)
            state.accumulators[finding], state.spare = state.spare, state.accumulators[finding]

    def finish(self) -> np.ndarray:
        state = self._state
        out = np.empty((len(state.accumulators), *state.shape), dtype=np.float32)
        for f, value in enumerate(state.accumulators):
            out[f] = value.numpy()
        self._state = _DeviceState()
        self._logits_value = None
        return out


def make_session_from_model(
    model: onnx.ModelProto, device: str, *, threads: int | None = None, device_id: int = 0
) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    providers: list[Any] = (
        [(CUDA_PROVIDER, cuda_provider_options(device_id)), CPU_PROVIDER]
        if device == "cuda"
        else [CPU_PROVIDER]
    )
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)


@dataclass
class BackendChoice:
    backend: CpuOrtBackend | IoBindingOrtBackend
    device: str
    variant: str
    batch_size: int
    note: str = ""  # why this device / variant, e.g. a CUDA fallback


def create_backend(
    package: ModelPackage,
    device: str = "auto",
    *,
    variant: str | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    io_binding: bool | None = None,
) -> BackendChoice:
    """Sessions for a package on the best available device, falling back from CUDA to CPU under 'auto'.

    Defaults: on CUDA the fp16 variant when its export parity passed (else fp32), batch 4, IOBinding;
    on CPU fp32, batch 2, plain numpy I/O (``io_binding=True`` forces the IOBinding path on the CPU).
    """
    resolved = resolve_device(device)
    note = ""
    if resolved == "cuda":
        try:
            return _create(package, "cuda", variant, batch_size, threads, io_binding=True)
        except DeviceError as exc:
            if device == "cuda":
                raise
            note = f"CUDA unusable, fell back to CPU: {exc}"
            log.warning(note)
    choice = _create(package, "cpu", variant, batch_size, threads, io_binding=bool(io_binding))
    choice.note = note
    return choice


def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu finds the CUDA and cuDNN libraries of the nvidia-* wheels only once preloaded."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # missing wheels: the provider then fails to load and we fall back
            log.debug("onnxruntime.preload_dlls failed: %s", exc)


def _create(package, device, variant, batch_size, threads, *, io_binding) -> BackendChoice:
    if device == "cuda":
        _preload_cuda_libraries()
    usable = package.variants_usable()
    if variant is None:
        variant = "fp16" if device == "cuda" and "fp16" in usable else "fp32"
    enc_path, dec_path = package.graph_paths(variant)
    pair = package.manifest.graphs[variant]
    enc = make_session(enc_path, device, threads=threads)
    dec = make_session(dec_path, device, threads=threads)
    if batch_size is None:
        batch_size = 4 if device == "cuda" else 2
    if device == "cuda" or io_binding:
        backend: CpuOrtBackend | IoBindingOrtBackend = IoBindingOrtBackend(
            enc, dec, pair, batch_size=batch_size, device_type=device, threads=threads
        )
    else:
        backend = CpuOrtBackend(enc, dec, pair)
    return BackendChoice(backend=backend, device=device, variant=variant, batch_size=batch_size)
