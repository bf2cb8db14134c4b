"""Text corpus to pre-training TFRecord shards: the authors' `build_pretraining_dataset.py`, in parallel.

Packs sentences into examples with the authors' algorithm and writes the
format `pretraining_data` reads. `num_processes` workers each take one run of
the corpus, cut at document ends into runs of about equal bytes, whatever its
files' sizes, so the work and the shards come out even. This module does not
import TensorFlow: the parent process of a parallel build never loads it, and
TF's start-up (seconds) is paid once, by the workers at the same time.
"""

import contextlib
import dataclasses
import glob
import json
import multiprocessing
import os
import random
import time

from absl import logging

FEATURES = ("input_ids", "input_mask", "segment_ids")
TRAIN_PREFIX = "pretrain_data"
EVAL_PREFIX = "eval_data"
# Lines are tokenised in batches: one tf-text call per chunk instead of per line.
_TOKENIZE_CHUNK = 4096
# Each worker logs how far it is this often (a large corpus takes hours).
PROGRESS_SECONDS = 60


@dataclasses.dataclass
class BuildStats:
    """What a build read and wrote; nothing is dropped without being counted here."""
    files: int = 0
    bytes: int = 0
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


class ExampleSerializer:
    """Serialises example dicts as `tf.train.Example`s, refilling one message instead of building three
    `Feature`s per example (a third of a build's time went to building them). Keys are written sorted, so
    the bytes are the same in every process.

    Example:
    ```python
    serialize = ExampleSerializer()
    record = serialize({"input_ids": [101, 102, 0], "input_mask": [1, 1, 0], "segment_ids": [0, 0, 0]})
    ```
    """

    def __init__(self):
        import tensorflow as tf  # Only in workers (see the module's docstring).
        self._message = tf.train.Example()
        self._values = [self._message.features.feature[k].int64_list.value for k in FEATURES]

    def __call__(self, example):
        for values, key in zip(self._values, FEATURES):
            values[:] = example[key]
        return self._message.SerializeToString(deterministic=True)


def read_lines(path, stats, start=0, end=None):
    """Yields the stripped lines of bytes [start, end) of a text file; undecodable bytes become U+FFFD, counted."""
    with open(path, "rb") as f:
        f.seek(start)
        while end is None or f.tell() < end:
            raw = f.readline()
            if not raw:
                break
            stats.lines += 1
            stats.bytes += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats.invalid_utf8_lines += 1
                line = raw.decode("utf-8", errors="replace")
            yield line.strip()


def _document_lines(piece, blanks_separate_docs, stats):
    """Yields sentences and `None` at each document end (blank line, or end of the piece (path, start, end))."""
    path, start, end = piece
    for line in read_lines(path, stats, start, end):
        if line:
            yield line
        elif blanks_separate_docs:
            yield None
    yield None


def _tokenized_sentences(piece, tokenizer, blanks_separate_docs, stats):
    """Yields token-id lists per sentence and None per document end, tokenising in chunks."""
    chunk = []

    def flush():
        texts = [t for t in chunk if t is not None]
        ids = iter(tokenizer(texts).to_list() if texts else [])
        for item in chunk:
            yield None if item is None else next(ids)

    for item in _document_lines(piece, blanks_separate_docs, stats):
        chunk.append(item)
        if len(chunk) >= _TOKENIZE_CHUNK:
            yield from flush()
            chunk = []
    yield from flush()


def _write_job(job):
    """Writes the shards of one process: job = (pieces, shard_paths, settings, manifest path).

    `pieces`: (path, start, end) byte ranges of the corpus files. Shards take
    their final names only when all of this job's are complete, then the
    manifest records what was built; a re-run with the same settings skips a
    job whose manifest and shards exist.
    """
    pieces, shard_paths, settings, manifest = job
    done = _finished_job(pieces, shard_paths, settings, manifest)
    if done is not None:
        return done
    # TensorFlow loads here, in the worker (see the module's docstring).
    from electra_tf import records
    from electra_tf import tokenization

    tokenizer = tokenization.WordPieceTokenizer(settings["vocab_file"], lower_case=settings["do_lower_case"])
    builder = ExampleBuilder(settings["max_seq_length"], tokenizer.cls_id, tokenizer.sep_id,
                             random.Random(settings["seed"]))
    serialize = ExampleSerializer()
    stats = BuildStats()
    total_bytes, last_report = sum(end - start for _, start, end in pieces), time.monotonic()
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(records.atomic_writer(p)) for p in shard_paths]
        for piece in pieces:
            pending_doc = False
            for ids in _tokenized_sentences(piece, tokenizer, settings["blanks_separate_docs"], stats):
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
                    writers[stats.examples % len(writers)].write(serialize(example))
                    stats.examples += 1
                    stats.tokens += sum(example["input_mask"])
                    if time.monotonic() - last_report >= PROGRESS_SECONDS:
                        last_report = time.monotonic()
                        logging.info("%s: %.1f of %.1f MB read, %d examples written",
                                     os.path.basename(manifest)[1:-len(".json")],
                                     stats.bytes / 1e6, total_bytes / 1e6, stats.examples)
    with open(manifest, "w") as f:
        json.dump({"sources": _fingerprint(pieces, settings), "shards": shard_paths, "settings": settings,
                   "stats": dataclasses.asdict(stats)}, f)
    return stats


def _finished_job(pieces, shard_paths, settings, manifest):
    """The stats of an earlier identical job whose shards all exist, else None."""
    try:
        with open(manifest) as f:
            built = json.load(f)
    except (OSError, ValueError):
        return None
    if (built.get("sources"), built.get("shards"), built.get("settings")) != \
            (_fingerprint(pieces, settings), shard_paths, settings) or not all(os.path.exists(p) for p in shard_paths):
        return None
    return BuildStats(**built["stats"])


def _fingerprint(pieces, settings):
    """The byte ranges of a job's inputs with their files' sizes and modification times, and the vocabulary's."""
    vocab = settings["vocab_file"]
    return [[p, start, end, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p, start, end in pieces] + \
        [[vocab, os.stat(vocab).st_size, os.stat(vocab).st_mtime_ns]]


def split_corpus(files, parts, blanks_separate_docs=True, stripes=16):
    """Deals the files, read in order as one text, to `parts` workers in equal shares, cut at document ends.

    The text is cut into `parts * stripes` runs of about equal bytes and
    worker j takes runs j, j + parts, j + 2 * parts, ...: equal bytes, and
    (striped over the whole corpus, not one contiguous part of it) about equal
    examples, so the work and the shards come out even however the corpus is
    split into files and however its sources differ. A cut moves forward to
    the next blank line (or, when each file is one document, to the next file
    end), so no document is split.

    Returns:
      `parts` lists of (path, start, end) byte ranges; some may be empty on a tiny corpus.
    """
    runs = _cut(files, parts * stripes, blanks_separate_docs)
    return [[piece for run in runs[j::parts] for piece in run] for j in range(parts)]


def _cut(files, parts, blanks_separate_docs):
    """The files as one text, cut at document ends into `parts` runs of about equal bytes, of (path, start, end)."""
    sizes = [os.path.getsize(p) for p in files]
    total = sum(sizes)
    cuts = []  # (file index, offset) where each run after the first begins.
    for k in range(1, parts):
        target, i = total * k // parts, 0
        while i < len(files) - 1 and target >= sizes[i]:
            target -= sizes[i]
            i += 1
        cut = (i, _document_end(files[i], target) if blanks_separate_docs else sizes[i])
        if cut[1] >= sizes[i]:
            cut = (i + 1, 0)
        cuts.append(max(cut, cuts[-1]) if cuts else cut)
    bounds = [(0, 0)] + cuts + [(len(files), 0)]
    runs = []
    for (i, start), (j, end) in zip(bounds, bounds[1:]):
        run = []
        for f in range(i, min(j + 1, len(files))):
            begin, stop = (start if f == i else 0), (end if f == j else sizes[f])
            if stop > begin:
                run.append((files[f], begin, stop))
        runs.append(run)
    return runs


def _document_end(path, offset):
    """The offset just after the first blank line at or after `offset` (the file's size if none)."""
    with open(path, "rb") as f:
        f.seek(offset)
        if offset:
            f.readline()  # The rest of the line the offset falls in.
        while True:
            line = f.readline()
            if not line or not line.strip():
                return f.tell()


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
      num_processes: parallel writer processes; the corpus is cut into that many runs of about
        equal bytes, at document ends (`split_corpus`).
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
    if not vocab_file or not os.path.isfile(vocab_file):  # Fail early; workers check its contents.
        raise ValueError(f"vocab file not found: {vocab_file!r}")
    os.makedirs(output_dir, exist_ok=True)
    num_processes = min(num_processes, num_out_files)
    shard_paths = [os.path.join(output_dir, f"{prefix}.tfrecord-{i}-of-{num_out_files}")
                   for i in range(num_out_files)]
    settings = dict(vocab_file=vocab_file, max_seq_length=max_seq_length,
                    blanks_separate_docs=blanks_separate_docs, do_lower_case=do_lower_case)
    jobs = [(pieces, shard_paths[j::num_processes], dict(settings, seed=seed + j),
             os.path.join(output_dir, f".{prefix}.build-{j}-of-{num_processes}.json"))
            for j, pieces in enumerate(split_corpus(files, num_processes, blanks_separate_docs))]
    if num_processes == 1:
        results = [_write_job(jobs[0])]
    else:
        # spawn: workers start clean (forking a process that has loaded TF can
        # deadlock) and load TF at the same time, once each.
        # The workers log (their progress) at the parent's verbosity; a spawned process starts at absl's default.
        with multiprocessing.get_context("spawn").Pool(num_processes, initializer=logging.set_verbosity,
                                                       initargs=(logging.get_verbosity(),)) as pool:
            results = pool.map(_write_job, jobs)
    stats = BuildStats()
    for r in results:
        stats.add(r)
    stats.files = len(files)  # Workers read byte ranges; a file may span two, or (empty) none.
    return stats


def log_build_stats(stats, where):
    logging.info("%s: %d files (%.1f MB), %d lines, %d documents -> %d examples, %d tokens",
                 where, stats.files, stats.bytes / 1e6, stats.lines, stats.documents, stats.examples, stats.tokens)
    if stats.invalid_utf8_lines:
        logging.warning("%s: %d lines had invalid UTF-8; the bad bytes were replaced with U+FFFD",
                        where, stats.invalid_utf8_lines)
    if stats.empty_after_tokenization:
        logging.warning("%s: skipped %d lines that produced no tokens", where, stats.empty_after_tokenization)
