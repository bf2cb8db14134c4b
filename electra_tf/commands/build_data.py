"""Writes pre-training TFRecords from a directory of text, as the authors' script does.

    python build_pretraining_dataset.py --corpus_dir=corpus --vocab_file=vocab.txt \
        --output_dir=pretrain_tfrecords --max_seq_length=128 --num_processes=2

Text files hold one sentence a line; a blank line ends a document
(`--noblanks_separate_docs`: each file is one document). With
`--learn_vocab_size=N` a WordPiece vocabulary of about N tokens is first learned
from the corpus and written to `--vocab_file`.
"""

import os
import sys

from absl import flags
from absl import logging

# Not TensorFlow: with --num_processes=N the workers load it, at the same time (electra_tf/data_builder.py).
from electra_tf import commands
from electra_tf import data_builder

flags.DEFINE_string("corpus_dir", None, "Directory of raw text files (searched recursively).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary file (written when --learn_vocab_size is set).")
flags.DEFINE_string("output_dir", None, "Where the TFRecord shards are written.")
flags.DEFINE_integer("max_seq_length", 128, "Example length in tokens, [CLS] and [SEP]s included.")
flags.DEFINE_integer("num_processes", 1, "Parallel writer processes.")
flags.DEFINE_integer("num_out_files", 1000, "Number of shards (the authors' 1000; use fewer on a small corpus).")
flags.DEFINE_boolean("blanks_separate_docs", True, "A blank line ends a document; else each file is one.")
flags.DEFINE_boolean("do_lower_case", True, "Lower-case and strip accents (BERT uncased).")
flags.DEFINE_integer("seed", 0, "Seed of the packing randomness.")
flags.DEFINE_integer("learn_vocab_size", 0, "If > 0, learn a WordPiece vocab of this size first.")
flags.DEFINE_integer("learn_vocab_every", 1, "Learn the vocab from every N-th line of the corpus only (the learner "
                     "reads ~2 MB a minute on 2 cores).")
flags.mark_flags_as_required(["corpus_dir", "vocab_file", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.learn_vocab_size > 0:
        from electra_tf import tokenization  # Loads TensorFlow, in this process.

        files = data_builder.list_corpus_files(FLAGS.corpus_dir)
        size = tokenization.learn_vocab(files, FLAGS.learn_vocab_size, FLAGS.vocab_file, FLAGS.do_lower_case,
                                       every_nth_line=FLAGS.learn_vocab_every)
        logging.info("wrote a vocabulary of %d tokens to %s", size, FLAGS.vocab_file)
    stats = data_builder.build_pretraining_dataset(
        FLAGS.corpus_dir, FLAGS.vocab_file, FLAGS.output_dir, FLAGS.max_seq_length,
        num_processes=FLAGS.num_processes, num_out_files=FLAGS.num_out_files,
        blanks_separate_docs=FLAGS.blanks_separate_docs, do_lower_case=FLAGS.do_lower_case, seed=FLAGS.seed)
    data_builder.log_build_stats(stats, os.path.abspath(FLAGS.output_dir))
    print(f"{stats.examples} examples ({stats.tokens} tokens) from {stats.files} files in {FLAGS.output_dir}; "
          f"{stats.invalid_utf8_lines} lines with invalid UTF-8 replaced, "
          f"{stats.empty_after_tokenization} empty lines skipped")


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
