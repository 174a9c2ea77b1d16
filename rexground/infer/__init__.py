"""The network contract, torch-free: what training, the export and the network engine must agree on.

A CT through the network, in reading order: ``package`` (the model package and its manifest: patch,
spacing, normalisation, channels, threshold, tile step, hashes), ``channels`` (the anatomy prior channels
and their scaling), ``conditions`` (the findings' text inputs), ``preprocess`` (CT -> network input),
``sliding_window`` (tiles, Gaussian weights, averaging) run by a backend (``onnx_session``: onnxruntime on
the CPU or CUDA; torch in ``rexground.train.tile_backend``), ``scan`` (CT -> averaged logits) and ``masks``
(logits -> each finding's postprocessed mask on the CT grid: the one route the network engine, training
validation and the export's parity check share).
"""
