"""Fixed-difficulty health probes: fixed corruptions, exact AUC, base rates and collapse signals."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import SPECIAL_IDS, make_pretrainer
from electra_tf import metrics, pretraining_data, tokenization
from electra_tf.config import ElectraConfig
from electra_tf.probes import HealthProbes, replacement_table


def test_roc_auc_equals_scikit_learn_with_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.2
    scores = np.round(rng.normal(size=500) + labels, 1)  # Rounded: many ties.
    assert metrics.roc_auc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.roc_auc(scores, np.zeros(500)) == 0.5


def test_pretraining_metrics_match_scikit_learn_over_batches():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    labels = [rng.random(n) < 0.15 for n in (40, 70)]
    scores = [rng.normal(size=len(y)) + 2 * y for y in labels]
    targets = [rng.integers(0, 9, n) for n in (5, 8)]
    logits = [rng.normal(size=(len(t), 9)) * 3 for t in targets]
    got = metrics.pretraining_metrics(scores, labels, logits, targets)
    all_scores, all_labels = np.concatenate(scores), np.concatenate(labels)
    all_logits, all_targets = np.concatenate(logits), np.concatenate(targets)
    probability = 1 / (1 + np.exp(-all_scores))
    assert got["disc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(all_labels, all_scores))
    assert got["disc_loss"] == pytest.approx(sklearn_metrics.log_loss(all_labels, probability))
    softmax = np.exp(all_logits) / np.exp(all_logits).sum(-1, keepdims=True)
    assert got["mlm_loss"] == pytest.approx(sklearn_metrics.log_loss(all_targets, softmax, labels=range(9)))
    assert got["gen_accuracy"] == pytest.approx((all_logits.argmax(-1) == all_targets).mean())
    # Huge logits stay finite (log-sum-exp, stable sigmoid cross-entropy).
    assert np.isfinite(list(metrics.pretraining_metrics([np.array([1e4, -1e4])], [np.array([0, 1])],
                                                        [np.array([[1e4, 0.0]])], [np.array([1])]).values())).all()


class _FrequencyDetector:
    """A 'discriminator' that calls a token replaced the rarer it is in the probe's own data."""

    def __init__(self, batches, vocab_size):
        counts = np.bincount(np.concatenate([b["input_ids"].ravel() for b in batches]), minlength=vocab_size)
        self.rarity = tf.constant(-np.log1p(counts).astype(np.float32))
        self.discriminator = lambda ids, segment_ids, mask, training=False, return_all_layers=False: (
            [tf.one_hot(ids % 8, 8)] * 2 if return_all_layers else tf.gather(self.rarity, ids))
        self.discriminator_head = lambda hidden: hidden


def test_probes_are_fixed_and_measure_what_they_say(demo_data_dir):
    config = ElectraConfig.from_size("tiny", {"max_seq_length": 64, "eval_batch_size": 16})
    files = pretraining_data.tfrecord_files(demo_data_dir, "eval_data")
    probes = HealthProbes.from_files(files, config, SPECIAL_IDS, num_batches=4, seed=3)
    again = HealthProbes.from_files(files, config, SPECIAL_IDS, num_batches=4, seed=3)
    for kind in ("unigram", "uniform"):
        for (fake, label), (fake2, _), batch in zip(probes.corrupted[kind], again.corrupted[kind], probes.batches):
            np.testing.assert_array_equal(fake, fake2)  # The same corruptions at every evaluation.
            real = batch["input_mask"] > 0
            assert 0.08 < label[real].mean() < 0.2 and not label[~real].any()
            assert not label[batch["input_ids"] == 101].any() and not label[batch["input_ids"] == 102].any()

    # Rarity spots uniform replacements (random vocabulary is rare) far better than unigram ones.
    detector = probes.evaluate(_FrequencyDetector(probes.batches, config.vocab_size))
    assert detector["uniform_auc"] > 0.9 and detector["unigram_auc"] < detector["uniform_auc"] - 0.15
    rate = 1 - detector["uniform_base_rate_accuracy"]
    assert detector["uniform_base_rate_loss"] == pytest.approx(-(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))

    # Any implementation is scored on the same corruptions (benchmarks/reference_curves.py's torch reference).
    oracle = probes.score(lambda ids, batch: np.where(ids != batch["input_ids"], 8.0, -8.0),
                          lambda batch: [np.full(batch["input_ids"].shape + (4,), 0.5)])
    assert oracle["unigram_auc"] == 1.0 and oracle["unigram_loss"] < 0.01 < oracle["unigram_base_rate_loss"]
    assert oracle["token_cosine"] == pytest.approx(1.0) and oracle["hidden_norm_layer_0"] == pytest.approx(1.0)

    model = make_pretrainer(config)
    first, second = probes.evaluate(model), probes.evaluate(model)
    assert first == second
    assert 0.3 < first["unigram_auc"] < 0.7  # Random init: chance, on the fixed task.
    assert -1 <= first["cls_cosine"] <= 1 and -1 <= first["token_cosine"] <= 1
    norms = [first[f"hidden_norm_layer_{i}"] for i in range(config.num_hidden_layers + 1)]
    assert all(n > 0 for n in norms) and f"hidden_norm_layer_{config.num_hidden_layers + 1}" not in first


def test_replacement_table_shows_masked_samples_and_probabilities(demo_data_dir, vocab_file):
    config = ElectraConfig.from_size("tiny", {"max_seq_length": 64, "eval_batch_size": 4})
    files = pretraining_data.tfrecord_files(demo_data_dir, "eval_data")
    batch = HealthProbes.from_files(files, config, SPECIAL_IDS, num_batches=1).batches[0]
    vocab = tokenization.load_vocab(vocab_file)
    tables = replacement_table(
        make_pretrainer(config), batch, vocab, num_sentences=3, max_tokens=64)
    assert len(tables) == 3
    for table, ids, mask in zip(tables, batch["input_ids"], batch["input_mask"]):
        rows = [r.strip("| ").split(" | ") for r in table.splitlines()[2:]]
        assert [r[0] for r in rows] == [vocab[i] for i in ids[mask > 0]]  # Every real token, in order.
        sampled = [r for r in rows if r[1]]
        assert 1 <= len(sampled) <= config.max_predictions_per_seq  # Only masked positions show a sample.
        assert all(0 <= float(r[2].strip("*")) <= 1 for r in rows)
