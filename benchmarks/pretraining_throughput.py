"""Pre-training throughput (tokens/s) of one setting: XLA or not, dtype policy, micro-batches.

Each setting runs in its own process (XLA and dtype policies are process-wide
choices), on real demo batches, after a warm-up that absorbs tracing:

    python benchmarks/pretraining_throughput.py --jit_compile=false
    python benchmarks/pretraining_throughput.py --jit_compile=true
    python benchmarks/pretraining_throughput.py --mixed_precision=mixed_bfloat16

It prints one JSON line; BENCHMARKS.md records the figures and the commands.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import electra_tf  # noqa: E402,F401  (switches oneDNN on before TensorFlow loads)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf import cli  # noqa: E402
from electra_tf import optimization  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf.pretrainer import ElectraPretrainer  # noqa: E402

cli.define_config_flags()
cli.define_run_flags()
flags.DEFINE_integer("steps", 20, "Timed steps (after two warm-up steps).")
flags.DEFINE_string("data_dir", "/tmp/electra_tf_bench_data", "Where the demo TFRecords are built.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = cli.load_config(FLAGS)
    cli.set_precision(FLAGS)
    pretraining_data.prepare_demo_data(FLAGS.data_dir, config.max_seq_length, config.do_lower_case)
    files = pretraining_data.tfrecord_files(FLAGS.data_dir, pretraining_data.TRAIN_PREFIX)
    batches = iter(pretraining_data.make_dataset(files, config.train_batch_size, config.max_seq_length, True))
    keras.utils.set_random_seed(config.seed)
    model = ElectraPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})
    model.build_variables()
    model.compile(optimizer=optimization.create_optimizer(config))
    model.optimizer.build(model.trainable_variables)
    jit = cli.jit_compile(FLAGS)
    step = tf.function(model.train_step, jit_compile=jit)
    for _ in range(2):
        step(next(batches))
    start = time.time()
    for _ in range(FLAGS.steps):
        logs = step(next(batches))
    float(logs["loss"])  # Waits for the last step.
    seconds = (time.time() - start) / FLAGS.steps
    print(json.dumps({
        "model_size": FLAGS.model_size, "jit_compile": jit, "mixed_precision": FLAGS.mixed_precision,
        "batch": config.train_batch_size, "seq": config.max_seq_length,
        "accumulation": config.gradient_accumulation_steps, "ms_per_step": round(seconds * 1000, 1),
        "tokens_per_second": round(config.train_batch_size * config.max_seq_length / seconds)}))


if __name__ == "__main__":
    app.run(main)
