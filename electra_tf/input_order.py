"""Training input whose order is a function of the seed and the step, so that a run resumes at its example.

A checkpointed `tf.data` iterator would pin a run to its strategy (TF cannot
checkpoint a distributed iterator, and a restored one cannot change its
replica count). Here the data side of a run is stateless instead: training
reads one global stream of examples, fixed by the seed, that repeats in
epochs; global batch k is examples [k*B, (k+1)*B) of it whatever the number
of replicas and workers, and a run that resumes at step k starts the stream
at example k*B.

- `record_stream`: serialized records of TFRecord files, shuffled, positioned
  at any example by skipping whole epochs and file groups, then reading at
  most one group (`cycle_length` files).
- `index_stream`: shuffled example indices for data held in memory.
- `replica_batches`: one input pipeline's share of a stream, as the
  per-replica batches `Strategy.distribute_datasets_from_function` expects.
"""

import numpy as np
import tensorflow as tf

from electra_tf import records as records_lib

_MAX_EPOCHS = 2 ** 31 - 1  # Streams repeat "forever"; epochs are int32 seeds.


def _endless(dataset):
    # tf.data cannot tell that these streams never end, and with an unknown
    # length MultiWorkerMirroredStrategy prepares for a last partial batch:
    # batch dimensions become unknown.
    return dataset.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))


def _permutation(n, *seed):
    """A permutation of range(n) drawn from the ints `seed` (run seed, epoch, ...): the same in every process."""
    key = tf.stack([tf.cast(seed[0], tf.int64), tf.cast(seed[1], tf.int64)])
    for part in seed[2:]:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(part, tf.int64))
    return tf.argsort(tf.random.stateless_uniform(tf.reshape(n, [1]), key), stable=True)


def index_stream(num_examples, seed, start=0):
    """Example indices (int64), each epoch a fresh permutation of `range(num_examples)`, from position `start` on.

    Args:
      num_examples: examples per epoch.
      seed: fixes every epoch's permutation.
      start: the stream position to begin at (the step times the global batch on resume).

    Example:
    ```python
    indices = index_stream(1000, seed=0, start=step * 32)
    ```
    """
    epoch, offset = divmod(start, num_examples)
    permutation = lambda e: tf.data.Dataset.from_tensor_slices(tf.cast(_permutation(num_examples, seed, e), tf.int64))
    rest = tf.data.Dataset.range(epoch + 1, _MAX_EPOCHS).flat_map(permutation)
    return _endless(permutation(epoch).skip(offset).concatenate(rest))


def record_stream(files, seed, start=0, counts=None, cycle_length=4, buffer_size=10_000):
    """The serialized records of `files` in a fixed, repeating order, from position `start` on.

    Epoch e reads the files in an order drawn from (seed, e), `cycle_length`
    files at a time: each group's files are interleaved record by record, and
    each block of `buffer_size` records is permuted. No block crosses a group,
    so position `start` is reached by skipping whole epochs and groups, known
    from the files' record counts, then reading at most one group's records:
    resuming costs one group's read, whatever the corpus.

    Args:
      files: TFRecord paths.
      seed: fixes the order.
      start: the stream position to begin at (the step times the global batch on resume).
      counts: {path: record count}; read from the files when needed and not given.
      cycle_length: files read at once.
      buffer_size: records permuted together.

    Example:
    ```python
    records = record_stream(shards, seed=0, start=step * 256, counts=counts)
    ```
    """
    files = list(files)
    cycle_length = min(cycle_length, len(files))
    paths = tf.constant(files)

    def group_records(epoch, group, members, first_block=0):
        records = tf.data.Dataset.from_tensor_slices(tf.gather(paths, members)).interleave(
            tf.data.TFRecordDataset, cycle_length=cycle_length, block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Each block is permuted by a stateless draw: no RNG state to restore,
        # and the order does not depend on TF's global seed.
        blocks = records.batch(buffer_size).enumerate().skip(first_block)
        return blocks.map(lambda block, batch: tf.gather(
            batch, _permutation(tf.size(batch), seed, epoch, group, block))).unbatch()

    def epoch_records(epoch, first_group=0):
        groups = tf.data.Dataset.from_tensor_slices(_permutation(len(files), seed, epoch)).batch(cycle_length)
        return groups.enumerate().skip(first_group).flat_map(
            lambda group, members: group_records(epoch, group, members))

    if not start:
        return _endless(tf.data.Dataset.range(_MAX_EPOCHS).flat_map(epoch_records))
    if counts is None:
        counts = {path: records_lib.count_records(path) for path in files}
    per_file = np.array([counts[path] for path in files], np.int64)
    if not per_file.sum():
        raise ValueError(f"no records in any of {len(files)} files")
    epoch, offset = divmod(start, int(per_file.sum()))
    order = _permutation(len(files), seed, epoch).numpy()
    for group, members in enumerate(np.array_split(order, range(cycle_length, len(files), cycle_length))):
        if offset < per_file[members].sum():
            break
        offset -= int(per_file[members].sum())
    head = group_records(epoch, group, members, offset // buffer_size).skip(offset % buffer_size)
    rest = tf.data.Dataset.range(epoch + 1, _MAX_EPOCHS).flat_map(epoch_records)
    return _endless(head.concatenate(epoch_records(epoch, group + 1)).concatenate(rest))


def replica_batches(examples, global_batch_size, input_context=None):
    """This input pipeline's per-replica batches of a global example stream.

    Global batch k is stream elements [k*B, (k+1)*B), split in order over the
    replicas of all workers; a pipeline (one per worker) yields its replicas'
    batches in replica order, as `distribute_datasets_from_function` deals
    them out. So the examples of a step do not depend on the replica or worker
    count. With several workers each one reads the whole stream and keeps its
    share: batch before parsing, so that the others' shares cost only their read.

    Args:
      examples: a dataset of examples (or of serialized records).
      global_batch_size: examples per step, over all replicas.
      input_context: `tf.distribute.InputContext`; None: global batches.
    """
    if input_context is None:
        return examples.batch(global_batch_size, drop_remainder=True)
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    batches = examples.batch(per_replica, drop_remainder=True)
    pipelines = input_context.num_input_pipelines
    if pipelines == 1:
        return batches
    replicas = input_context.num_replicas_in_sync
    local = replicas // pipelines
    first = input_context.input_pipeline_id * local
    mine = lambda index, batch: tf.logical_and(index % replicas >= first, index % replicas < first + local)
    batches = batches.enumerate().filter(mine).map(lambda index, batch: batch)
    return _endless(batches) if examples.cardinality() == tf.data.INFINITE_CARDINALITY else batches
