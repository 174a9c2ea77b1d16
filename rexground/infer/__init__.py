"""Network inference without torch: preprocessing, sliding window, onnxruntime sessions (CPU and CUDA)."""
