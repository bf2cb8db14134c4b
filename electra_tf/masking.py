"""Dynamic masking and replaced-token construction, inside the training graph.

Everything has static shapes and uses a stateless counter-based generator
driven by per-example seeds, so an example's masks and samples depend only on the run's
seed, the step and the example's index in the global batch: not on the
replica count or micro-batching. It compiles under XLA and runs on TPUs.
"""

import math

import tensorflow as tf

# The authors keep 15% of the chosen positions as the original token and put
# [MASK] at the rest; unlike BERT there is no random-token replacement.
MASK_TOKEN_FRACTION = 0.85



def example_seeds(seed, batch_size, offset=0):
    """Per-example stateless seeds [batch_size, 2] for one step.

    Example `i` of the step gets `(k, offset + i)`, where `k` is drawn from the
    step's `seed`. With `offset` = the example's index in the global batch,
    an example's masks and samples are the same whether the global batch runs
    on one device, is split over replicas, or is accumulated in micro-batches.
    """
    key = tf.random.stateless_uniform([], seed, minval=None, maxval=None, dtype=tf.int32, alg="philox")
    index = offset + tf.range(batch_size, dtype=tf.int32)
    return tf.stack([tf.fill([batch_size], key), index], axis=-1)


def example_uniform(seeds, shape):
    """Uniform [0, 1) floats [batch, *shape], each example's from its own seed.

    A counter-based generator: element j of example i is a keyed integer hash
    of (seed_i, j). Unlike a loop of per-example RNG ops it is one vectorised
    computation (fast on CPU, GPU and TPU, XLA included), and being integer
    arithmetic it gives bit-identical numbers with and without XLA.
    """
    counter = tf.range(math.prod(shape), dtype=tf.int32)[None]
    uniform = _keyed_uniform(seeds[:, 0:1], seeds[:, 1:2], counter)
    return tf.reshape(uniform, tf.concat([tf.shape(seeds)[:1], shape], 0))


def counter_uniform(seed, shape):
    """Uniform [0, 1) floats of `shape` (static or dynamic) from one int32 seed [2], by the same hash."""
    counter = tf.range(tf.reduce_prod(shape), dtype=tf.int32)
    return tf.reshape(_keyed_uniform(seed[0], seed[1], counter), shape)


def _keyed_uniform(key0, key1, counter):
    key0, key1 = tf.bitcast(key0, tf.uint32), tf.bitcast(key1, tf.uint32)
    bits = _hash(tf.bitcast(counter, tf.uint32) ^ _hash(key0 ^ _hash(key1 + _GOLDEN)))
    bits = _hash(bits + key0)
    # The top 24 bits are exact in float32.
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * 2.0 ** -24


_GOLDEN = 0x9E3779B9


def _hash(x):
    # "lowbias32" (C. Wellons): a full-avalanche 32-bit integer mix.
    x ^= tf.bitwise.right_shift(x, 16)
    x *= 0x7FEB352D
    x ^= tf.bitwise.right_shift(x, 15)
    x *= 0x846CA68B
    return x ^ tf.bitwise.right_shift(x, 16)


def mask_inputs(input_ids, input_mask, seeds, *, mask_prob, max_predictions, special_ids, mask_id):
    """Chooses positions to predict and masks them, the authors' way.

    Per sequence, `max(1, min(max_predictions, round(n_tokens * mask_prob)))`
    positions are drawn uniformly, without replacement, from the real tokens
    that are not [CLS], [SEP] or [MASK]. Of those, 85% become [MASK].
    (The authors' code draws with replacement; duplicates there merely wasted
    prediction slots, so we draw without and document the difference.)

    Args:
      input_ids, input_mask: int32 [batch, length].
      seeds: int32 [batch, 2], per-example stateless seeds (`example_seeds`).
      mask_prob: fraction of tokens to predict.
      max_predictions: N, the fixed number of prediction slots per sequence.
      special_ids: ids never masked ([CLS], [SEP], [MASK]; padding is excluded by input_mask).
      mask_id: id of [MASK].

    Returns:
      dict with `input_ids` (masked), `positions` [batch, N], `ids` (original
      ids at the positions), `weights` (1.0 for real slots, 0.0 for unused).
    """
    length = input_ids.shape[1]
    candidates = candidate_mask(input_ids, input_mask, special_ids)
    count = _count(candidates, input_mask, mask_prob, max_predictions)
    # Top-k of uniform scores restricted to candidates samples without replacement.
    draws = example_uniform(seeds, [length + max_predictions])
    scores = tf.where(candidates, draws[:, :length], -1.0)
    positions = tf.math.top_k(scores, k=max_predictions, sorted=True).indices
    weights = tf.sequence_mask(count, max_predictions)
    positions = tf.where(weights, positions, 0)
    weights = tf.cast(weights, tf.float32)

    ids = tf.gather(input_ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    use_mask_token = draws[:, length:] < MASK_TOKEN_FRACTION
    masked_ids = scatter_into(input_ids, positions, tf.fill(tf.shape(positions), mask_id),
                              weights * tf.cast(use_mask_token, tf.float32))
    return {"input_ids": masked_ids, "positions": positions, "ids": ids, "weights": weights}


def candidate_mask(input_ids, input_mask, special_ids):
    """bool [batch, length]: the real tokens that are not among `special_ids`, the ones masking may choose."""
    candidates = tf.cast(input_mask, tf.bool)
    for special in special_ids:
        candidates &= tf.not_equal(input_ids, special)
    return candidates


def num_predictions(input_ids, input_mask, *, mask_prob, max_predictions, special_ids):
    """Per-sequence count of masked positions: it depends on the lengths only, not on randomness.

    `max(1, min(max_predictions, round(n_tokens * mask_prob)))`, capped by the
    number of maskable tokens. Knowing it before masking lets a step that is
    split into micro-batches normalise the loss by the whole batch's count.
    """
    return _count(candidate_mask(input_ids, input_mask, special_ids), input_mask, mask_prob, max_predictions)


def _count(candidates, input_mask, mask_prob, max_predictions):
    num_tokens = tf.reduce_sum(tf.cast(input_mask, tf.float32), axis=-1)
    wanted = tf.maximum(1, tf.minimum(max_predictions, tf.cast(tf.round(num_tokens * mask_prob), tf.int32)))
    return tf.minimum(wanted, tf.reduce_sum(tf.cast(candidates, tf.int32), axis=-1))


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


def gumbel_sample(logits, seeds, temperature, original_ids=None, block_size=256):
    """Samples one id per row of `softmax(logits / temperature)`, without gradient.

    Exact Gumbel-max sampling in two stages: first a block of `block_size`
    ids, with the block's total probability (its logsumexp), then an id
    inside the chosen block. It draws noise for `blocks + block_size` values
    per row instead of one per vocabulary entry, which on a 30k vocabulary
    makes sampling several times faster than one Gumbel per logit.

    Args:
      logits: float [batch, N, vocab].
      seeds: int32 [batch, 2], per-example stateless seeds.
      temperature: sampling temperature.
      original_ids: int32 [batch, N]; when given, the original token is
        excluded (the authors' `disallow_correct`).
      block_size: ids per first-stage block.

    Returns:
      int32 [batch, N] sampled ids.
    """
    logits = tf.stop_gradient(sampling_logits(logits, temperature, original_ids))
    vocab, n = logits.shape[-1], logits.shape[1]
    blocks = -(-vocab // block_size)
    padded = tf.pad(logits, [[0, 0], [0, 0], [0, blocks * block_size - vocab]], constant_values=-float("inf"))
    grouped = tf.reshape(padded, [-1, n, blocks, block_size])
    uniform = example_uniform(seeds, [n, blocks + block_size])
    gumbel = -tf.math.log(-tf.math.log(tf.maximum(uniform, 1e-9)))
    block = tf.argmax(tf.reduce_logsumexp(grouped, axis=-1) + gumbel[..., :blocks], axis=-1,
                      output_type=tf.int32)
    within = tf.gather(grouped, block, batch_dims=2)
    offset = tf.argmax(within + gumbel[..., blocks:], axis=-1, output_type=tf.int32)
    return block * block_size + offset


def sampling_logits(logits, temperature, original_ids=None):
    """float32 logits of the distribution `gumbel_sample` draws from: at `temperature`, the original excluded.

    With gradient: adversarial training differentiates the log-probability of its samples under them.

    Args:
      logits: float [batch, N, vocab].
      temperature: sampling temperature.
      original_ids: int32 [batch, N]; when given, the original token gets (almost) no probability.
    """
    logits = tf.cast(logits, tf.float32) / temperature
    if original_ids is not None:
        logits -= 1000.0 * tf.one_hot(original_ids, logits.shape[-1], dtype=logits.dtype)
    return logits


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
