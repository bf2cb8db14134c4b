"""electra_tf: ELECTRA pre-training and fine-tuning in TensorFlow 2 / Keras 3."""

import os

# TensorFlow leaves oneDNN kernels off on some CPUs (AMD's); electra_tf's steps
# run much faster with them (docs/performance.md). The switch is read when TensorFlow
# loads, so it is set here, before any module of the package imports it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.2.0"
