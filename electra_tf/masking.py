"""Dynamic masking and replaced-token construction, inside the training graph.

Everything has static shapes and uses stateless random ops driven by an
explicit seed, so a step is reproducible from (seed, step, replica) alone,
compiles under XLA and runs per replica on TPUs.
"""

import tensorflow as tf

# The authors keep 15% of the chosen positions as the original token and put
# [MASK] at the rest; unlike BERT there is no random-token replacement.
MASK_TOKEN_FRACTION = 0.85


def mask_inputs(input_ids, input_mask, seed, *, mask_prob, max_predictions, special_ids, mask_id):
    """Chooses positions to predict and masks them, the authors' way.

    Per sequence, `max(1, min(max_predictions, round(n_tokens * mask_prob)))`
    positions are drawn uniformly, without replacement, from the real tokens
    that are not [CLS], [SEP] or [MASK]. Of those, 85% become [MASK].
    (The authors' code draws with replacement; duplicates there merely wasted
    prediction slots, so we draw without and document the difference.)

    Args:
      input_ids, input_mask: int32 [batch, length].
      seed: int32 [2], a stateless RNG seed.
      mask_prob: fraction of tokens to predict.
      max_predictions: N, the fixed number of prediction slots per sequence.
      special_ids: ids never masked ([CLS], [SEP], [MASK]; padding is excluded by input_mask).
      mask_id: id of [MASK].

    Returns:
      dict with `input_ids` (masked), `positions` [batch, N], `ids` (original
      ids at the positions), `weights` (1.0 for real slots, 0.0 for unused).
    """
    batch, length = tf.shape(input_ids)[0], input_ids.shape[1]
    candidates = tf.cast(input_mask, tf.bool)
    for special in special_ids:
        candidates &= tf.not_equal(input_ids, special)

    num_tokens = tf.reduce_sum(tf.cast(input_mask, tf.float32), axis=-1)
    num_to_predict = tf.maximum(1, tf.minimum(
        max_predictions, tf.cast(tf.round(num_tokens * mask_prob), tf.int32)))

    # Top-k of uniform scores restricted to candidates samples without replacement.
    seed_positions, seed_keep = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    scores = tf.random.stateless_uniform([batch, length], seed_positions)
    scores = tf.where(candidates, scores, -1.0)
    top_scores, positions = tf.math.top_k(scores, k=max_predictions, sorted=True)
    weights = tf.sequence_mask(num_to_predict, max_predictions) & (top_scores >= 0.0)
    positions = tf.where(weights, positions, 0)
    weights = tf.cast(weights, tf.float32)

    ids = tf.gather(input_ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    use_mask_token = tf.random.stateless_uniform([batch, max_predictions], seed_keep) < MASK_TOKEN_FRACTION
    masked_ids = scatter_into(input_ids, positions, tf.fill(tf.shape(positions), mask_id),
                              weights * tf.cast(use_mask_token, tf.float32))
    return {"input_ids": masked_ids, "positions": positions, "ids": ids, "weights": weights}


def scatter_into(sequence, positions, values, weights):
    """Writes `values` at `positions` of `sequence` where `weights` > 0.

    A one-hot product rather than a scatter op: it has static shapes, is
    XLA/TPU-friendly, and ignores unused slots cleanly.

    Args:
      sequence: int32 [batch, length].
      positions, values: int32 [batch, N].
      weights: float [batch, N].
    """
    length = sequence.shape[1]
    hits = tf.one_hot(positions, length, dtype=tf.int32) * tf.cast(weights > 0, tf.int32)[..., None]
    touched = tf.minimum(tf.reduce_sum(hits, axis=1), 1)
    written = tf.reduce_sum(hits * values[..., None], axis=1)
    return sequence * (1 - touched) + written


def gumbel_sample(logits, seed, temperature, original_ids=None):
    """Samples ids from `logits / temperature` by the Gumbel-max trick, without gradient.

    Args:
      logits: float [batch, N, vocab].
      seed: int32 [2] stateless seed.
      temperature: sampling temperature.
      original_ids: int32 [batch, N]; when given, the original token is
        excluded (the authors' `disallow_correct`).
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32)) / temperature
    if original_ids is not None:
        logits -= 1000.0 * tf.one_hot(original_ids, tf.shape(logits)[-1], dtype=logits.dtype)
    uniform = tf.random.stateless_uniform(tf.shape(logits), seed, minval=1e-9, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


def replace_tokens(input_ids, masked, sampled_ids):
    """Builds the discriminator's input and its labels.

    Args:
      input_ids: the original ids [batch, length].
      masked: the dict from `mask_inputs`.
      sampled_ids: generator samples at `masked["positions"]` [batch, N].

    Returns:
      (fake_ids, labels): the sequence with samples written in, and int32
      labels that are 1 where a position was masked and the sample differs
      from the original (a correct guess counts as original).
    """
    fake_ids = scatter_into(input_ids, masked["positions"], sampled_ids, masked["weights"])
    labels = tf.cast(tf.not_equal(fake_ids, input_ids), tf.int32)
    return fake_ids, labels
