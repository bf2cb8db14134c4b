"""Pre-training throughput (tokens/s) of one setting: XLA or not, dtype policy, micro-batches.

Each setting runs in its own process (XLA and dtype policies are process-wide
choices), on real demo batches, after a warm-up that absorbs tracing; the first
step's time (tracing, and with XLA compilation) is reported apart:

    python benchmarks/pretrain_settings.py --jit_compile=false
    python benchmarks/pretrain_settings.py --jit_compile=true
    python benchmarks/pretrain_settings.py --mixed_precision=mixed_bfloat16

It prints one JSON line; BENCHMARKS.md records the figures and the commands.
"""

import json
import time

from absl import app
from absl import flags
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import FLAGS, setup

flags.DEFINE_integer("steps", 20, "Timed steps (after two warm-up steps).")


def main(argv):
    del argv
    config, jit, model, batches = setup()
    step = tf.function(model.train_step, jit_compile=jit)
    start = time.time()
    float(step(next(batches))["loss"])
    first_step = time.time() - start  # Tracing, and with XLA compilation: what a run pays once.
    step(next(batches))
    start = time.time()
    for _ in range(FLAGS.steps):
        logs = step(next(batches))
    float(logs["loss"])  # Waits for the last step.
    seconds = (time.time() - start) / FLAGS.steps
    print(json.dumps({
        "model_size": FLAGS.model_size, "jit_compile": jit, "mixed_precision": FLAGS.mixed_precision,
        "batch": config.train_batch_size, "seq": config.max_seq_length,
        "accumulation": config.gradient_accumulation_steps, "first_step_seconds": round(first_step, 1),
        "ms_per_step": round(seconds * 1000, 1),
        "tokens_per_second": round(config.train_batch_size * config.max_seq_length / seconds)}))


if __name__ == "__main__":
    app.run(main)
