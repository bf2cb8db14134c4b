"""Scores pre-trained generator/discriminator pairs on the same held-out masks.

`reference_curves.py` scores each implementation with its own masking rule and
one fixed mask draw, so two implementations' generator accuracies differ by
which positions were masked as well as by their weights. This script loads
every pair into one electra_tf pre-trainer and scores all of them on the same
`--mask_seeds` draws of masked positions over the held-out demo batches: the
differences left are the weights'.

A run is either an electra_tf model dir (a pre-training run's) or a Hugging
Face dir holding an `ElectraForPreTraining` with its `ElectraForMaskedLM` in
`<dir>/generator` (as `reference_curves.py` saves the torch reference).

Usage:
  python benchmarks/score_generators.py --runs=runs/curves1600/electra_tf_seed0,runs/curves1600/torch_seed0
"""

import json
import os

from absl import app
from absl import flags
import numpy as np
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import FLAGS, SPECIAL_IDS, build_pretrainer, heldout_metrics
from electra_tf import checkpoint_interop
from electra_tf import cli
from electra_tf import pretraining_data
from electra_tf import probes as probes_lib

flags.DEFINE_list("runs", None, "Run dirs to score (electra_tf model dirs, or Hugging Face dirs with a generator/).")
flags.DEFINE_integer("mask_seeds", 5, "Mask draws to score every run on.")
flags.mark_flag_as_required("runs")

METRICS = ("gen_accuracy", "mlm_loss", "disc_auc", "disc_loss")


def load_pair(pretrainer, run):
    """Loads the generator and discriminator saved at `run` into `pretrainer`; returns the format."""
    names = checkpoint_interop.variable_names(pretrainer)
    source = checkpoint_interop.detect_format(run)
    arrays = checkpoint_interop.read_checkpoint(run, source)
    if source == "hf":
        generator_dir = os.path.join(run, "generator")
        if not os.path.isdir(generator_dir):
            raise app.UsageError(f"--runs: {run} is a Hugging Face dir without the generator/ this script scores")
        arrays = checkpoint_interop.merge_generator(arrays, checkpoint_interop.read_checkpoint(generator_dir, "hf"))
    checkpoint_interop.assign(names, arrays)
    return source


def main(argv):
    del argv
    config = cli.load_config(FLAGS)
    data_dir = f"{FLAGS.data_dir}_{config.max_seq_length}"
    pretraining_data.prepare_demo_data(data_dir, config.max_seq_length, config.do_lower_case)
    eval_files = pretraining_data.tfrecord_files(data_dir, pretraining_data.EVAL_PREFIX)
    batches = probes_lib.HealthProbes.from_files(eval_files, config, SPECIAL_IDS).batches
    pretrainer = build_pretrainer(config)
    forward = tf.function(lambda features: pretrainer(features, training=False))
    for run in FLAGS.runs:
        source = load_pair(pretrainer, run)
        scores = [heldout_metrics(forward, batches, mask_seed=1_000_003 + s) for s in range(FLAGS.mask_seeds)]
        summary = {m: [round(float(np.mean([s[m] for s in scores])), 4), round(float(np.std([s[m] for s in scores])), 4)]
                   for m in METRICS}
        print(json.dumps({"run": run, "format": source, "mask_seeds": FLAGS.mask_seeds, **summary}))


if __name__ == "__main__":
    app.run(main)
