import logging
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import data_builder
from electra_tf import pretraining_data
from electra_tf.data_builder import ExampleBuilder

CLS, SEP = 101, 102


def _unpack(example):
    ids, mask, seg = (np.array(example[k]) for k in pretraining_data.FEATURES)
    n = int(mask.sum())
    return ids, mask, seg, n


def test_packing_follows_the_authors_rules():
    rng = random.Random(0)
    builder = ExampleBuilder(64, CLS, SEP, random.Random(1))
    examples = []
    for _ in range(3000):
        sentence = [rng.randint(1000, 2000) for _ in range(rng.randint(1, 40))]
        ex = builder.add_sentence(sentence)
        if ex:
            examples.append(ex)
        if rng.random() < 0.05:
            ex = builder.end_document()
            if ex:
                examples.append(ex)
    assert len(examples) > 300
    single, short = 0, 0
    for ex in examples:
        ids, mask, seg, n = _unpack(ex)
        assert len(ids) == len(mask) == len(seg) == 64
        assert mask[:n].all() and not mask[n:].any() and not ids[n:].any() and not seg[n:].any()
        assert ids[0] == CLS and ids[n - 1] == SEP
        seps = np.flatnonzero(ids[:n] == SEP)
        assert len(seps) in (1, 2)
        assert not (ids[1:n] == CLS).any()
        if len(seps) == 1:
            single += 1
            assert not seg.any()
        else:
            # [CLS] A [SEP] is segment 0, B [SEP] is segment 1.
            assert not seg[:seps[0] + 1].any() and seg[seps[0] + 1:n].all()
        short += n < 40
    # About 10% single-segment examples (plus document ends with one sentence).
    assert 0.05 < single / len(examples) < 0.5
    assert short > 0  # Random target lengths and document ends give short examples.


def test_document_end_flushes_and_long_sentences_are_truncated():
    builder = ExampleBuilder(16, CLS, SEP, random.Random(0))
    assert builder.add_sentence([5, 6, 7]) is None
    ex = builder.end_document()
    ids, mask, seg, n = _unpack(ex)
    assert list(ids[:n]) == [CLS, 5, 6, 7, SEP]
    assert builder.end_document() is None
    ex = builder.add_sentence(list(range(1000, 1100)))
    ids, mask, seg, n = _unpack(ex)
    assert n == 16 and ids[15] == SEP


def test_the_serializer_refills_its_message_and_writes_what_a_new_example_would():
    serialize = data_builder.ExampleSerializer()
    examples = [{"input_ids": [CLS, 7, 8, SEP], "input_mask": [1, 1, 1, 1], "segment_ids": [0, 0, 1, 1]},
                {"input_ids": [CLS, 30000, SEP, 0], "input_mask": [1, 1, 1, 0], "segment_ids": [0, 0, 0, 0]}]
    for example in examples:  # The second must not keep any of the first's values.
        fresh = tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(int64_list=tf.train.Int64List(value=example[k])) for k in pretraining_data.FEATURES}))
        record = serialize(example)
        assert record == fresh.SerializeToString(deterministic=True)
        parsed = tf.train.Example.FromString(record).features.feature
        assert {k: list(parsed[k].int64_list.value) for k in pretraining_data.FEATURES} == example


def test_build_writes_sharded_records_and_reader_streams_batches(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The cat sat on the mat.\nIt was happy.\n\nA new document starts here.\n"
                                  * 50, encoding="utf-8")
    (corpus / "b.txt").write_bytes(b"Bad bytes \xff\xfe in this line.\nGood line.\n\x07\n\n" * 20)
    out = tmp_path / "out"
    stats = data_builder.build_pretraining_dataset(str(corpus), vocab_file, str(out), max_seq_length=32,
                                                   num_out_files=3, num_processes=2)
    files = pretraining_data.tfrecord_files(str(out), "pretrain_data")
    assert [os.path.basename(f) for f in files] == [f"pretrain_data.tfrecord-{i}-of-3" for i in range(3)]
    assert stats.files == 2 and stats.invalid_utf8_lines == 20 and stats.empty_after_tokenization == 20
    assert stats.lines == 50 * 4 + 20 * 4
    count = sum(1 for f in files for _ in tf.data.TFRecordDataset(f))
    assert count == stats.examples > 0
    batch = next(iter(pretraining_data.make_dataset(files, 4, 32, is_training=True)))
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {k: ((4, 32), tf.int32) for k in pretraining_data.FEATURES}
    assert (batch["input_ids"][:, 0].numpy() == 101).all()


def test_a_worker_logs_its_progress_in_bytes_and_examples(tmp_path, vocab_file, monkeypatch, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The cat sat on the mat.\nIt was happy.\n\n" * 40, encoding="utf-8")
    monkeypatch.setattr(data_builder, "PROGRESS_SECONDS", 0)
    with caplog.at_level(logging.INFO, logger="absl"):  # absl's own level: an earlier test may have set it.
        stats = data_builder.build_pretraining_dataset(str(corpus), vocab_file, str(tmp_path / "out"),
                                                       max_seq_length=16, num_out_files=1)
    assert stats.bytes == os.path.getsize(corpus / "a.txt")
    reports = [r.getMessage() for r in caplog.records if "MB read" in r.getMessage()]
    assert len(reports) == stats.examples > 0
    assert reports[-1] == f"pretrain_data.build-0-of-1: 0.0 of 0.0 MB read, {stats.examples} examples written"


def test_the_corpus_is_cut_into_equal_runs_at_document_ends(tmp_path):
    rng = random.Random(0)
    big = "".join("".join(f"Sentence {d}.{i} " + "word " * rng.randrange(30) + "\n" for i in range(rng.randrange(1, 6)))
                  + "\n" for d in range(300))
    (tmp_path / "a_big.txt").write_text(big)
    (tmp_path / "b_small.txt").write_text("One line.\n\nAnother document.\n")
    files = data_builder.list_corpus_files(str(tmp_path))
    runs = data_builder.split_corpus(files, 3, stripes=1)
    total = sum(os.path.getsize(f) for f in files)
    # In order, every byte once; each run within one document of a third; each cut just after a blank line.
    pieces = [piece for run in runs for piece in run]
    assert [(p, s) for p, s, _ in pieces] == [(files[0], 0), (files[0], pieces[0][2]), (files[0], pieces[1][2]),
                                              (files[1], 0)]
    assert pieces[2][2] == os.path.getsize(files[0]) and pieces[3][2] == os.path.getsize(files[1])
    for run in runs:
        assert abs(sum(end - start for _, start, end in run) - total / 3) < 300
    for _, start, _ in pieces[1:3]:
        assert big.encode()[start - 2:start] == b"\n\n"
    # Striped: each of 2 workers gets 8 runs from all over the corpus, half of it in all.
    striped = data_builder.split_corpus(files, 2, stripes=8)
    assert sorted(piece for part in striped for piece in part) == sorted(
        piece for run in data_builder.split_corpus(files, 16, stripes=1) for piece in run)
    for part in striped:
        assert abs(sum(end - start for _, start, end in part) - total / 2) < 8 * 300
        starts = [start for path, start, _ in part if path == files[0]]
        assert min(starts) < total / 8 and max(starts) > total * 3 / 4
    # One document per file: cuts fall on file ends.
    assert data_builder.split_corpus(files, 2, blanks_separate_docs=False, stripes=1) == [
        [(files[0], 0, len(big))], [(files[1], 0, 29)]]


def test_two_processes_build_the_examples_of_one_in_even_shards(tmp_path, vocab_file):
    _, corpus = pretraining_data.write_demo_corpus(str(tmp_path / "corpus"))  # The held-out Wikipedia leads,
    with open(os.path.join(corpus, "z_small.txt"), "w") as f:  # and a small file: files are not the unit of work.
        f.write("A short document of one sentence.\n")
    built = {}
    for processes in (1, 2):
        out = str(tmp_path / f"out{processes}")
        stats = data_builder.build_pretraining_dataset(corpus, vocab_file, out, max_seq_length=64,
                                                       num_out_files=4, num_processes=processes)
        counts = [sum(1 for _ in tf.data.TFRecordDataset(f))
                  for f in pretraining_data.tfrecord_files(out, "pretrain_data")]
        assert sum(counts) == stats.examples and max(counts) <= 1.1 * min(counts), counts
        built[processes] = stats
    assert abs(built[2].examples - built[1].examples) <= 0.01 * built[1].examples
    assert abs(built[2].tokens - built[1].tokens) <= 0.01 * built[1].tokens
    assert (built[2].lines, built[2].documents, built[2].files) == (built[1].lines, built[1].documents, 2)


def test_train_and_eval_split_is_the_eval_shards_or_else_the_last_training_shard(tmp_path):
    with pytest.raises(ValueError, match=f"--data_dir={tmp_path}: no pretrain_data.tfrecord"):
        pretraining_data.train_and_eval_files(str(tmp_path))
    shards = [tmp_path / f"pretrain_data.tfrecord-{i}-of-3" for i in range(3)]
    shards[0].touch()
    assert pretraining_data.train_and_eval_files(str(tmp_path)) == ([str(shards[0])], [])  # Nothing to spare.
    for shard in shards[1:]:
        shard.touch()
    assert pretraining_data.train_and_eval_files(str(tmp_path)) == ([str(s) for s in shards[:2]], [str(shards[2])])
    (tmp_path / "eval_data.tfrecord-0-of-1").touch()
    assert pretraining_data.train_and_eval_files(str(tmp_path)) == (
        [str(s) for s in shards], [str(tmp_path / "eval_data.tfrecord-0-of-1")])
    with pytest.raises(ValueError, match="--pretrain_data_dir=/nowhere: no pretrain_data.tfrecord.*dataset.py\)$"):
        pretraining_data.train_and_eval_files("/nowhere", "--pretrain_data_dir")


def test_length_mismatch_names_file_and_lengths(demo_data_dir):
    files = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")
    with pytest.raises(ValueError, match=r"pretrain_data.tfrecord-0-of-4: examples have length 64 but max_seq_length is 128"):
        pretraining_data.check_shards(files, 128, verify=False)
    assert sum(pretraining_data.check_shards(files, 64).values()) > 10000


def test_bad_corpus_dirs(tmp_path, vocab_file):
    with pytest.raises(ValueError, match="corpus_dir not found"):
        data_builder.build_pretraining_dataset(str(tmp_path / "missing"), vocab_file, str(tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        data_builder.build_pretraining_dataset(str(tmp_path / "empty"), vocab_file, str(tmp_path / "o"))


def test_bad_vocab_files_are_named_before_or_by_the_workers(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("One sentence.\n\nAnother document.\n")
    with pytest.raises(ValueError, match="vocab file not found"):  # In the parent, before any worker starts.
        data_builder.build_pretraining_dataset(str(tmp_path / "corpus"), str(tmp_path / "nope.txt"),
                                               str(tmp_path / "o"))
    bad = tmp_path / "vocab.txt"
    bad.write_text("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(ValueError, match=r"vocab.txt:3: malformed vocab entry"):  # Raised in a worker, passed on.
        data_builder.build_pretraining_dataset(str(tmp_path / "corpus"), str(bad), str(tmp_path / "o"),
                                               num_processes=2, num_out_files=2)


def test_demo_data_is_real_text_with_a_held_out_slice(demo_data_dir):
    train = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")
    held_out = pretraining_data.tfrecord_files(demo_data_dir, "eval_data")
    n_train = sum(1 for f in train for _ in tf.data.TFRecordDataset(f))
    n_eval = sum(1 for f in held_out for _ in tf.data.TFRecordDataset(f))
    assert n_train > 10000 and 0.02 < n_eval / n_train < 0.1
