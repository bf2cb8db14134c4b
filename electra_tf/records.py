"""TFRecord files that are whole or absent: written under a temporary name, verified before use.

A builder killed mid-write, or an interrupted copy, leaves a file that reads
fine up to a point and then fails deep inside a training run with an error
that names no file. Files written through `atomic_writer` appear under their
final name only once complete, and `verify` reads files through once (record
headers and CRC32C checksums, in TensorFlow's C++ reader) so that a corrupt,
truncated or foreign file stops a run before it starts, named.
"""

import contextlib
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

# Each record is framed by a length (8 bytes) and two masked CRC32Cs (4 bytes each).
_FRAME_BYTES = 16


class CorruptRecordsError(ValueError):
    """A TFRecord file that cannot be read through; the message names it and what is wrong."""


def temporary_path(path):
    """Where `atomic_writer` writes `path` until it is complete: hidden, so no shard glob matches it."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.incomplete")


@contextlib.contextmanager
def atomic_writer(path):
    """A `tf.io.TFRecordWriter` whose file takes its final name only when the block ends without error.

    Example:
    ```python
    with atomic_writer("out/data.tfrecord-0-of-1") as writer:
        writer.write(record)
    ```
    """
    temporary = temporary_path(path)
    writer = tf.io.TFRecordWriter(temporary)
    try:
        yield writer
        writer.close()
        os.replace(temporary, path)
    except BaseException:
        writer.close()
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _scan(path):
    """(records, payload + framing bytes) of one file, read in TensorFlow's C++ reader (checksums checked)."""
    batches = tf.data.TFRecordDataset(path, buffer_size=8 << 20).batch(4096)
    return batches.reduce(
        (np.int64(0), np.int64(0)),
        lambda state, batch: (state[0] + tf.size(batch, out_type=tf.int64),
                              state[1] + tf.reduce_sum(tf.cast(tf.strings.length(batch), tf.int64) + _FRAME_BYTES)))


_scan_file = tf.function(_scan, input_signature=[tf.TensorSpec([], tf.string)])


def count_records(path):
    """Reads `path` through, checking every record's framing and checksums; returns the record count.

    Raises:
      CorruptRecordsError naming the file: not a TFRecord file, a corrupt
      record, or a file that ends inside a record.
    """
    try:
        count, size = _scan_file(tf.constant(path))
    except tf.errors.DataLossError as e:
        good = _records_before_error(path)
        if good == 0:
            raise CorruptRecordsError(
                f"{path}: not a TFRecord file, or corrupt from its first record ({_reason(e)})") from None
        raise CorruptRecordsError(
            f"{path}: truncated or corrupt after {good} good records ({_reason(e)}); rebuild or replace it") from None
    return _checked_size(path, int(count), int(size))


def _checked_size(path, count, size):
    actual = os.path.getsize(path)
    if size != actual:
        # TensorFlow stops silently at a record header cut short by the end of the file.
        raise CorruptRecordsError(
            f"{path}: truncated: {actual - size} bytes after record {count} do not form a whole record; "
            "rebuild or replace it")
    return count


def verify(files, progress_every_bytes=1 << 30):
    """Reads every file through, several at once (see `count_records`); returns {path: record count}.

    Logs a progress line every `progress_every_bytes` read, for large corpora.
    """
    counts, done, next_report, start = {}, 0, progress_every_bytes, time.time()
    total = sum(os.path.getsize(p) for p in files)
    scans = tf.data.Dataset.from_tensor_slices(list(files)).map(
        lambda path: (path, *_scan(path)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    try:
        for path, count, size in scans.as_numpy_iterator():
            path = path.decode()
            counts[path] = _checked_size(path, int(count), int(size))
            done += int(size)
            if done >= next_report:
                logging.info("verified %d of %d files, %.1f of %.1f GB (%.0f MB/s)", len(counts), len(files),
                             done / 1e9, total / 1e9, done / 1e6 / max(time.time() - start, 1e-9))
                next_report = done + progress_every_bytes
    except tf.errors.DataLossError:
        for path in files:  # The pipeline does not say which file failed: find it, one by one.
            if path not in counts:
                count_records(path)
        raise
    return counts


def find_corrupt(files):
    """The message of the first file in `files` that does not read through, or None."""
    for path in files:
        try:
            count_records(path)
        except CorruptRecordsError as e:
            return str(e)
    return None


def _records_before_error(path):
    good = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            good += 1
    except tf.errors.DataLossError:
        pass
    return good


def _reason(error):
    # TensorFlow's message starts with the op's internal name; keep what it says of the record.
    message = error.message
    for marker in ("corrupted record", "truncated record"):
        if marker in message:
            return message[message.index(marker):].split(" [Op:")[0].splitlines()[0].strip()
    return message.strip().splitlines()[0]
