"""Scores saved generator/discriminator pairs on the same held-out masks (`common.score_runs`).

`reference_curves.py` scores each implementation on its own fixed mask draw,
so generator accuracies there differ by which positions were masked as well as
by the weights; here every run is scored on the same `--mask_seeds` draws.
A run is an electra_tf model dir or a Hugging Face dir with the generator in
`<dir>/generator` (as `reference_curves.py` saves the torch reference).

Usage:
  python benchmarks/score_generators.py --runs=runs/curves1600/electra_tf_seed0,runs/curves1600/torch_seed0
"""

import json

from absl import app
from absl import flags

from common import FLAGS, SPECIAL_IDS, score_runs
from electra_tf import cli
from electra_tf import pretraining_data
from electra_tf import probes as probes_lib

flags.DEFINE_list("runs", None, "Run dirs to score (electra_tf model dirs, or Hugging Face dirs with a generator/).")
flags.DEFINE_integer("mask_seeds", 5, "Mask draws to score every run on.")
flags.mark_flag_as_required("runs")


def main(argv):
    del argv
    config = cli.load_config(FLAGS)
    data_dir = f"{FLAGS.data_dir}_{config.max_seq_length}"
    pretraining_data.prepare_demo_data(data_dir, config.max_seq_length, config.do_lower_case)
    eval_files = pretraining_data.tfrecord_files(data_dir, pretraining_data.EVAL_PREFIX)
    batches = probes_lib.HealthProbes.from_files(eval_files, config, SPECIAL_IDS).batches
    for run, scores in score_runs(config, FLAGS.runs, batches, FLAGS.mask_seeds).items():
        print(json.dumps({"run": run, "mask_seeds": FLAGS.mask_seeds,
                          **{m: [round(mean, 4), round(std, 4)] for m, (mean, std) in scores.items()}}))


if __name__ == "__main__":
    app.run(main)
