"""electra_tf: ELECTRA pre-training and fine-tuning in TensorFlow 2 / Keras 3."""

import os

# oneDNN kernels are off by default on AMD CPUs; on this project's CPUs they
# measured ~20% faster (BENCHMARKS.md). The switch is read when TensorFlow
# loads, so it is set here, before any module of the package imports it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.2.0"
