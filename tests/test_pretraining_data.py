import os
import random

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import pretraining_data
from electra_tf.pretraining_data import ExampleBuilder

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


def test_build_writes_sharded_records_and_reader_streams_batches(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The cat sat on the mat.\nIt was happy.\n\nA new document starts here.\n"
                                  * 50, encoding="utf-8")
    (corpus / "b.txt").write_bytes(b"Bad bytes \xff\xfe in this line.\nGood line.\n\x07\n\n" * 20)
    out = tmp_path / "out"
    stats = pretraining_data.build_pretraining_dataset(str(corpus), vocab_file, str(out), max_seq_length=32,
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


def test_length_mismatch_names_file_and_lengths(demo_data_dir):
    files = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")
    with pytest.raises(ValueError, match=r"pretrain_data.tfrecord-0-of-4: examples have length 64 but max_seq_length is 128"):
        pretraining_data.check_shards(files, 128, verify=False)
    assert sum(pretraining_data.check_shards(files, 64).values()) > 10000


def test_bad_corpus_dirs(tmp_path, vocab_file):
    with pytest.raises(ValueError, match="corpus_dir not found"):
        pretraining_data.build_pretraining_dataset(str(tmp_path / "missing"), vocab_file, str(tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        pretraining_data.build_pretraining_dataset(str(tmp_path / "empty"), vocab_file, str(tmp_path / "o"))


def test_demo_data_is_real_text_with_a_held_out_slice(demo_data_dir):
    train = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")
    held_out = pretraining_data.tfrecord_files(demo_data_dir, "eval_data")
    n_train = sum(1 for f in train for _ in tf.data.TFRecordDataset(f))
    n_eval = sum(1 for f in held_out for _ in tf.data.TFRecordDataset(f))
    assert n_train > 10000 and 0.02 < n_eval / n_train < 0.1
