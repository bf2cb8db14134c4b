import numpy as np
import tensorflow as tf

from electra_tf import masking

CLS, SEP, MASK = 101, 102, 103


def _batch(rng, batch=64, length=128):
    ids = rng.integers(1000, 5000, size=(batch, length)).astype(np.int32)
    lengths = rng.integers(4, length + 1, size=batch)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
    ids[:, 0] = CLS
    ids[np.arange(batch), lengths - 1] = SEP
    mid = lengths // 2
    ids[np.arange(batch), mid] = SEP
    ids[:, 5] = np.where(lengths > 6, MASK, ids[:, 5])  # A literal [MASK] in the text is never chosen.
    ids *= mask
    return ids, mask, lengths


# In a tf.function, as in training: eager map_fn would run one Python iteration per example.
@tf.function(reduce_retracing=True)
def _mask_graph(ids, mask, seed, offset, max_predictions, mask_prob):
    seeds = masking.example_seeds(seed, tf.shape(ids)[0], offset)
    return masking.mask_inputs(ids, mask, seeds, mask_prob=mask_prob, max_predictions=max_predictions,
                               special_ids=[CLS, SEP, MASK], mask_id=MASK)


def _mask(ids, mask, seed, max_predictions=19, mask_prob=0.15, offset=0):
    out = _mask_graph(tf.constant(ids), tf.constant(mask), tf.constant(seed, tf.int32), tf.constant(offset),
                      max_predictions, mask_prob)
    return {k: v.numpy() for k, v in out.items()}


@tf.function(reduce_retracing=True)
def _sample_graph(logits, seed, temperature, original_ids, block_size):
    seeds = masking.example_seeds(seed, tf.shape(logits)[0])
    return masking.gumbel_sample(logits, seeds, temperature, original_ids, block_size)


def _sample(logits, seed, temperature=1.0, original_ids=None, block_size=256):
    return _sample_graph(logits, tf.constant(seed, tf.int32), temperature, original_ids, block_size).numpy()


def test_counts_candidates_and_the_85_15_split():
    rng = np.random.default_rng(0)
    masked_token, kept, total = 0, 0, 0
    for trial in range(20):
        ids, mask, lengths = _batch(rng)
        out = _mask(ids, mask, [trial, 7])
        expected = np.maximum(1, np.minimum(19, np.round(lengths * 0.15))).astype(int)
        np.testing.assert_array_equal(out["weights"].sum(1), expected)
        for b in range(len(ids)):
            pos = out["positions"][b][out["weights"][b] > 0]
            assert len(set(pos)) == len(pos)  # Without replacement.
            assert mask[b, pos].all()
            assert not np.isin(ids[b, pos], [CLS, SEP, MASK]).any()
            np.testing.assert_array_equal(out["ids"][b][out["weights"][b] > 0], ids[b, pos])
            masked_token += (out["input_ids"][b, pos] == MASK).sum()
            kept += (out["input_ids"][b, pos] == ids[b, pos]).sum()
            total += len(pos)
            untouched = np.setdiff1d(np.arange(ids.shape[1]), pos)
            np.testing.assert_array_equal(out["input_ids"][b, untouched], ids[b, untouched])
    assert masked_token + kept == total
    assert abs(masked_token / total - 0.85) < 0.02


def test_positions_are_uniform_over_candidates():
    ids = np.full((1, 32), 2000, np.int32)
    ids[0, 0], ids[0, 31] = CLS, SEP
    mask = np.ones_like(ids)
    hits = np.zeros(32)
    for seed in range(3000):
        out = _mask(ids, mask, [seed, 1], max_predictions=4)
        hits[out["positions"][0][out["weights"][0] > 0]] += 1
    assert hits[0] == 0 and hits[31] == 0
    freq = hits[1:31] / hits.sum()
    assert np.abs(freq - 1 / 30).max() < 0.01


def test_sequences_without_candidates_get_no_predictions():
    ids = np.array([[CLS, SEP, 0, 0]], np.int32)
    out = _mask(ids, (ids > 0).astype(np.int32), [1, 2], max_predictions=2)
    assert out["weights"].sum() == 0
    np.testing.assert_array_equal(out["input_ids"], ids)


def test_same_seed_same_masks_and_new_seed_new_masks():
    ids, mask, _ = _batch(np.random.default_rng(1))
    a, b, c = _mask(ids, mask, [1, 2]), _mask(ids, mask, [1, 2]), _mask(ids, mask, [1, 3])
    np.testing.assert_array_equal(a["positions"], b["positions"])
    assert (a["positions"] != c["positions"]).any()


def test_an_examples_masks_do_not_depend_on_how_the_batch_is_split():
    ids, mask, _ = _batch(np.random.default_rng(2), batch=8)
    whole = _mask(ids, mask, [5, 6])
    second_half = _mask(ids[4:], mask[4:], [5, 6], offset=4)
    for key in ("positions", "input_ids", "weights"):
        np.testing.assert_array_equal(whole[key][4:], second_half[key])


def test_num_predictions_counts_the_weights():
    ids, mask, _ = _batch(np.random.default_rng(3))
    out = _mask(ids, mask, [1, 1])
    count = masking.num_predictions(tf.constant(ids), tf.constant(mask), mask_prob=0.15, max_predictions=19,
                                    special_ids=[CLS, SEP, MASK])
    np.testing.assert_array_equal(count.numpy(), out["weights"].sum(1))


def test_two_stage_gumbel_sampling_matches_the_softmax():
    # A vocabulary that is not a multiple of the block size exercises the padding.
    rng = np.random.default_rng(0)
    vocab, draws = 300, 40000
    logits = rng.normal(0.0, 2.0, size=vocab).astype(np.float32)
    tiled = tf.tile(tf.constant(logits)[None, None], [1, draws, 1])
    samples = _sample(tiled, [3, 4], block_size=32).ravel()
    assert samples.min() >= 0 and samples.max() < vocab
    freq = np.bincount(samples, minlength=vocab) / draws
    probs = tf.nn.softmax(logits).numpy()
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / draws) + 1e-3)


def test_gumbel_temperature_and_disallow_correct():
    tiled = tf.tile(tf.constant([[[2.0, 1.0, 0.0, -1.0]]]), [1, 20000, 1])
    plain = _sample(tiled, [3, 4]).ravel()
    np.testing.assert_allclose(np.bincount(plain, minlength=4) / plain.size,
                               tf.nn.softmax([2.0, 1.0, 0.0, -1.0]).numpy(), atol=0.015)
    hot = _sample(tiled, [3, 4], temperature=0.05).ravel()
    assert (hot == 0).mean() > 0.99
    banned = _sample(tiled, [3, 4], original_ids=tf.zeros([1, 20000], tf.int32))
    assert not (banned == 0).any()


def test_replace_tokens_labels_only_changed_masked_positions():
    ids = tf.constant([[CLS, 10, 11, 12, 13, SEP]])
    masked = {"positions": tf.constant([[1, 2, 3]]), "weights": tf.constant([[1.0, 1.0, 0.0]])}
    fake, labels = masking.replace_tokens(ids, masked, tf.constant([[10, 99, 77]]))
    # Position 1: sampled the original (not replaced); 2: replaced; 3: unused slot.
    np.testing.assert_array_equal(fake.numpy(), [[CLS, 10, 99, 12, 13, SEP]])
    np.testing.assert_array_equal(labels.numpy(), [[0, 0, 1, 0, 0, 0]])
