"""Training of the text-conditioned grounding network (torch): ``network``, ``data`` (the prepared-scan cache
and patch sampling), ``augment``, ``losses``, ``loop`` (one process or torchrun DDP), ``validate`` (held-out
scans through the inference path's own route), ``tile_backend`` (the torch sliding-window backend that
validation, the export's parity check and the ONNX benchmark share), ``checkpoint``, ``text_inputs`` and
``config`` (torch-free). The network contract it trains for (manifest, input channels, conditioning inputs,
the way from logits to masks) lives in ``rexground.infer``; the inference path never imports this package."""
