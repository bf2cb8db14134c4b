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

from common import FLAGS, heldout_batches, score_runs
from electra_tf import cli

flags.DEFINE_list("runs", None, "Run dirs to score (electra_tf model dirs, or Hugging Face dirs with a generator/).")
flags.DEFINE_integer("mask_seeds", 5, "Mask draws to score every run on.")
flags.mark_flag_as_required("runs")


def main(argv):
    del argv
    config = cli.load_config(FLAGS)
    batches = heldout_batches(config)
    for run, scores in score_runs(config, FLAGS.runs, batches, FLAGS.mask_seeds).items():
        print(json.dumps({"run": run, "mask_seeds": FLAGS.mask_seeds,
                          **{m: [round(mean, 4), round(std, 4)] for m, (mean, std) in scores.items()}}))


if __name__ == "__main__":
    app.run(main)
