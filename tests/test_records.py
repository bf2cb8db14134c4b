"""Corrupt, truncated, foreign and empty TFRecord files, and builds that are killed mid-write."""

import glob
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from electra_tf import data_builder
from electra_tf import pretraining_data
from electra_tf import records
from electra_tf import training

LENGTH = 16


def _shard(path, count, length=LENGTH):
    example = {"input_ids": [101] + [7] * (length - 2) + [102], "input_mask": [1] * length, "segment_ids": [0] * length}
    serialize = data_builder.ExampleSerializer()
    with records.atomic_writer(str(path)) as writer:
        for _ in range(count):
            writer.write(serialize(example))
    return str(path)


def _cut(path, keep):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:keep] if keep >= 0 else data[:len(data) + keep])


def test_each_kind_of_bad_shard_is_named_with_what_is_wrong(tmp_path):
    good = _shard(tmp_path / "pretrain_data.tfrecord-0-of-2", 50)
    assert pretraining_data.check_shards([good], LENGTH) == {good: 50}

    truncated = _shard(tmp_path / "truncated", 50)
    _cut(truncated, os.path.getsize(truncated) // 2 + 30)  # Inside the 26th record's payload.
    with pytest.raises(records.CorruptRecordsError, match=r"truncated: truncated or corrupt after 25 good records "
                                                          r"\(truncated record at \d+"):
        pretraining_data.check_shards([good, truncated], LENGTH)

    header_cut = _shard(tmp_path / "header_cut", 50)  # Ends inside a record header: TF alone reads 49 and stops.
    _cut(header_cut, os.path.getsize(header_cut) - (os.path.getsize(header_cut) // 50) + 5)
    with pytest.raises(records.CorruptRecordsError, match=r"header_cut: truncated: 5 bytes after record 49"):
        pretraining_data.check_shards([header_cut], LENGTH)

    flipped = _shard(tmp_path / "flipped", 50)
    data = bytearray(open(flipped, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(flipped, "wb").write(bytes(data))
    with pytest.raises(records.CorruptRecordsError, match=r"flipped: truncated or corrupt after \d+ good records "
                                                          r"\(corrupted record at \d+\)"):
        pretraining_data.check_shards([flipped], LENGTH)

    foreign = tmp_path / "foreign"
    foreign.write_text("this is a text file, not a TFRecord\n" * 100)
    with pytest.raises(records.CorruptRecordsError, match=r"foreign: not a TFRecord file"):
        pretraining_data.check_shards([good, str(foreign)], LENGTH)
    # Without the full pass, the first-record check still names it.
    with pytest.raises(records.CorruptRecordsError, match=r"foreign: not a TFRecord file"):
        pretraining_data.check_shards([good, str(foreign)], LENGTH, verify=False)

    other_protos = tmp_path / "other_protos"
    with tf.io.TFRecordWriter(str(other_protos)) as writer:
        writer.write(b"\xff\xff\xff not an Example")
    with pytest.raises(ValueError, match="other_protos: its records are not tf.train.Example protos"):
        pretraining_data.check_shards([str(other_protos)], LENGTH)


def test_empty_shards_are_skipped_by_name_and_all_empty_is_an_error(tmp_path, caplog):
    good = _shard(tmp_path / "a", 5)
    empty = tmp_path / "b"
    empty.write_bytes(b"")
    assert pretraining_data.check_shards([good, str(empty)], LENGTH) == {good: 5, str(empty): 0}
    assert any("1 of 2 shards hold no records" in r.getMessage() and str(empty) in r.getMessage()
               for r in caplog.records)
    with pytest.raises(ValueError, match="no records in any of 1 shards"):
        pretraining_data.check_shards([str(empty)], LENGTH)


def test_atomic_writer_leaves_no_file_when_the_write_fails(tmp_path):
    path = str(tmp_path / "out.tfrecord")
    with pytest.raises(RuntimeError):
        with records.atomic_writer(path) as writer:
            writer.write(b"x")
            assert os.path.exists(records.temporary_path(path)) and not os.path.exists(path)
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


class _Counter(keras.Model):
    """The smallest model with a train_step, to drive the Trainer over real input files."""

    def __init__(self):
        super().__init__()
        self.total = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def train_step(self, data):
        tokens = tf.reduce_sum(data["input_mask"])
        self.total.assign_add(tf.cast(tokens, tf.float32))
        self.optimizer.iterations.assign_add(tf.cast(tokens > 0, tf.int64))  # A step only once its batch is read.
        return {}


def test_a_bad_record_met_in_training_is_named_after_a_checkpoint(tmp_path):
    files = [_shard(tmp_path / "pretrain_data.tfrecord-0-of-2", 40), _shard(tmp_path / "pretrain_data.tfrecord-1-of-2", 40)]
    _cut(files[1], os.path.getsize(files[1]) // 2 + 30)  # The second file is cut inside its 21st record.
    strategy = tf.distribute.get_strategy()
    model = _Counter()
    model.compile(optimizer="sgd")
    model.optimizer.build([])
    trainer = training.Trainer(model, strategy, str(tmp_path / "run"))
    dataset_fn = lambda context, start_step: pretraining_data.make_dataset(  # noqa: E731
        files, 4, LENGTH, is_training=False)
    with pytest.raises(records.CorruptRecordsError,
                       match=r"step 15: training met a bad record: .*pretrain_data.tfrecord-1-of-2: truncated or "
                             r"corrupt after 20 good records .*Saved step 15 to .*ckpt-15;"):
        trainer.train(dataset_fn, num_steps=100, steps_per_loop=5, checkpoint_every=50, tokens_per_step=64,
                      data_files=files)
    # 15 batches of 4 from the 60 good records were trained on and saved.
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-15") and float(model.total) == 60 * LENGTH


def test_a_killed_build_leaves_no_finished_looking_shard_and_a_rerun_completes(tmp_path, vocab_file):
    corpus, _ = pretraining_data.write_demo_corpus(str(tmp_path / "corpus"))
    _cut(os.path.join(corpus, "wiki.txt"), 1_200_000)  # Real text, enough to be caught mid-write.
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO, "build_pretraining_dataset.py"), f"--corpus_dir={corpus}",
               f"--vocab_file={vocab_file}", f"--output_dir={out}", "--max_seq_length=64", "--num_out_files=3"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    build = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not any(os.path.getsize(p) > 50_000 for p in glob.glob(str(out / ".*.incomplete"))):
        assert build.poll() is None and time.time() < deadline, "the build ended before it could be killed"
        time.sleep(0.05)
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    assert glob.glob(str(out / ".*.incomplete"))
    assert pretraining_data.tfrecord_files(str(out), "pretrain_data") == []  # Nothing half-written looks finished.

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    shards = pretraining_data.tfrecord_files(str(out), "pretrain_data")
    assert len(shards) == 3 and not glob.glob(str(out / ".*.incomplete"))
    counts = records.verify(shards)
    examples = int(done.stdout.split(" examples")[0])
    assert sum(counts.values()) == examples > 2_000
    # A second re-run finds the build complete and writes nothing.
    mtimes = [os.stat(p).st_mtime_ns for p in shards]
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and f"{examples} examples" in again.stdout
    assert [os.stat(p).st_mtime_ns for p in shards] == mtimes
    np.testing.assert_array_equal(sorted(counts.values()), sorted(records.verify(shards).values()))
