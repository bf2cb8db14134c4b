"""Training input as a function of (seed, step): positions, epochs, replica and worker shares, fine-tuning."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import finetuning, input_order, pretraining_data, squad


def _records(dataset, count):
    return list(dataset.take(count).as_numpy_iterator())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Seven files of 5 to 11 records (two groups of 4 and 3 files), each record naming its file and index."""
    root = tmp_path_factory.mktemp("shards")
    files = []
    for f, count in enumerate((5, 11, 7, 9, 6, 8, 10)):
        path = str(root / f"pretrain_data.tfrecord-{f}-of-7")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(count):
                writer.write(f"{f}:{i}".encode())
        files.append(path)
    return files


def test_record_stream_starts_anywhere_in_the_order_of_a_run_from_the_start(shards):
    total = 56
    full = _records(input_order.record_stream(shards, seed=3, buffer_size=4), 3 * total + 5)
    for epoch in range(3):  # Every epoch reads every record once, each in another order.
        assert sorted(full[epoch * total:(epoch + 1) * total]) == sorted(full[:total])
    assert full[:total] != full[total:2 * total]
    counts = {path: n for path, n in zip(shards, (5, 11, 7, 9, 6, 8, 10))}
    # Starts in the first group, at its end, in the second group, at an epoch's end, in a later epoch.
    for start in (1, 5, 30, 31, 32, 55, 56, 57, 2 * total + 40):
        assert _records(input_order.record_stream(shards, 3, start, counts, buffer_size=4), 12) == \
            full[start:start + 12], start
    # Without counts the files are counted.
    assert _records(input_order.record_stream(shards, 3, 45, buffer_size=4), 12) == full[45:57]


def test_record_stream_depends_on_its_seed_only(shards):
    first = _records(input_order.record_stream(shards, seed=1), 56)
    tf.random.set_seed(1234)  # TF's global seed must not move the data.
    assert _records(input_order.record_stream(shards, seed=1), 56) == first
    assert _records(input_order.record_stream(shards, seed=2), 56) != first


def test_index_stream_is_a_permutation_per_epoch_and_starts_anywhere():
    full = _records(input_order.index_stream(10, seed=5), 40)
    assert all(sorted(full[e * 10:(e + 1) * 10]) == list(range(10)) for e in range(4))
    assert full[:10] != full[10:20]
    for start in (0, 3, 10, 27):
        assert _records(input_order.index_stream(10, 5, start), 10) == full[start:start + 10]


def test_replicas_and_workers_share_each_global_batch_in_order(mirrored_strategy, shards):
    steps, batch = 6, 8
    global_batches = _records(input_order.replica_batches(input_order.record_stream(shards, 0), batch), steps)

    def per_replica(context):
        return input_order.replica_batches(input_order.record_stream(shards, 0), batch, context)

    # Two replicas of one worker: each step's two halves, in replica order, are the global batch.
    iterator = iter(mirrored_strategy.distribute_datasets_from_function(per_replica))
    for step in range(steps):
        halves = mirrored_strategy.experimental_local_results(next(iterator))
        np.testing.assert_array_equal(np.concatenate([h.numpy() for h in halves]), global_batches[step])
    # Two workers of two replicas each: worker w's pipeline yields replicas 2w and 2w+1's quarters.
    shares = [_records(per_replica(tf.distribute.InputContext(2, w, 4)), 2 * steps) for w in (0, 1)]
    for step in range(steps):
        quarters = [shares[w][2 * step + r] for w in (0, 1) for r in (0, 1)]
        np.testing.assert_array_equal(np.concatenate(quarters), global_batches[step])


def test_pretraining_data_resumes_at_the_step_on_any_replica_count(demo_data_dir, mirrored_strategy):
    files = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")
    straight = _records(pretraining_data.make_dataset(files, 8, 64, True, seed=1), 4)
    resumed = mirrored_strategy.distribute_datasets_from_function(
        lambda context: pretraining_data.make_dataset(files, 8, 64, True, seed=1, input_context=context,
                                                      start_step=2))
    for step, batch in zip((2, 3), resumed):
        ids = np.concatenate([b.numpy() for b in mirrored_strategy.experimental_local_results(batch["input_ids"])])
        np.testing.assert_array_equal(ids, straight[step]["input_ids"])


def test_fine_tuning_resumes_at_the_example_where_it_stopped(tmp_path):
    rng = np.random.default_rng(0)
    features = {"input_ids": rng.integers(0, 1000, (13, 8)).astype(np.int32),
                "input_mask": np.ones((13, 8), np.int32), "segment_ids": np.zeros((13, 8), np.int32),
                "label_ids": np.arange(13, dtype=np.int32)}
    straight = _records(finetuning.train_dataset(features, 4, seed=2), 8)  # Crosses two epochs of 13.
    for step in (1, 3, 7):
        resumed = _records(finetuning.train_dataset(features, 4, seed=2, start_step=step), 1)[0]
        np.testing.assert_array_equal(resumed["label_ids"], straight[step]["label_ids"])

    path = str(tmp_path / "train_features.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(13):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                k: tf.train.Feature(int64_list=tf.train.Int64List(value=[i] * (8 if k.startswith(("input", "seg"))
                                                                                else 1)))
                for k in squad.TRAIN_FEATURES})).SerializeToString())
    straight = _records(squad.train_dataset(path, 8, 4, seed=2), 8)
    for step in (1, 3, 7):
        resumed = _records(squad.train_dataset(path, 8, 4, seed=2, start_step=step, num_features=13), 1)[0]
        np.testing.assert_array_equal(resumed["input_ids"], straight[step]["input_ids"])
