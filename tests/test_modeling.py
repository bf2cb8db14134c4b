import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SPECIAL_IDS
from electra_tf import modeling, optimization
from electra_tf.config import ElectraConfig
from electra_tf.pretrainer import ElectraPretrainer


@pytest.fixture(scope="module")
def small_pretrainer():
    # ELECTRA-Small's shapes with two layers, to keep the test quick.
    config = ElectraConfig.from_size("small", {"num_hidden_layers": 2, "max_seq_length": 32})
    model = ElectraPretrainer(config, SPECIAL_IDS)
    model.build_variables()
    return model


def test_generator_and_discriminator_share_the_whole_embedding_block(small_pretrainer):
    m = small_pretrainer
    shared = {id(v) for v in m.generator.weights} & {id(v) for v in m.discriminator.weights}
    assert shared == {id(v) for v in m.embeddings.weights}
    assert len(shared) == 5  # word, position, token type tables; LayerNorm gamma and beta.
    assert m.generator_head.token_embedding is m.embeddings.word_embeddings
    # Each encoder keeps its own projection from E=128 to its hidden size.
    assert m.generator.embeddings_project.kernel.shape == (128, 64)
    assert m.discriminator.embeddings_project.kernel.shape == (128, 256)


def test_shapes_and_sizes(small_pretrainer):
    m, c = small_pretrainer, small_pretrainer.config
    ids = tf.constant(np.random.default_rng(0).integers(1000, 9000, (3, 32)), tf.int32)
    out = m({"input_ids": ids, "input_mask": tf.ones_like(ids), "segment_ids": tf.zeros_like(ids)})
    assert out["mlm_logits"].shape == (3, c.max_predictions_per_seq, 30522)
    assert out["disc_logits"].shape == (3, 32) and out["fake_ids"].shape == (3, 32)
    hidden = m.discriminator(ids, tf.zeros_like(ids), tf.ones_like(ids))
    assert hidden.shape == (3, 32, 256)
    assert len(m.generator.transformer_layers) == 2 and m.generator.transformer_layers[0].num_heads == 1
    assert m.discriminator.transformer_layers[0].num_heads == 4


def test_no_projection_when_embedding_equals_hidden():
    config = ElectraConfig.from_size("tiny")
    assert config.embedding_size == config.hidden_size
    embeddings = modeling.ElectraEmbeddings.from_electra_config(config)
    assert modeling.ElectraEncoder.discriminator(config, embeddings).embeddings_project is None


def test_padding_does_not_change_real_token_outputs(small_pretrainer):
    enc = small_pretrainer.discriminator
    ids = tf.constant([[101, 2000, 2001, 102, 0, 0]], tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 0, 0]], tf.int32)
    other = tf.constant([[101, 2000, 2001, 102, 777, 888]], tf.int32)
    a = enc(ids, tf.zeros_like(ids), mask)[:, :4]
    b = enc(other, tf.zeros_like(ids), mask)[:, :4]
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_counter_dropout_rate_scaling_determinism_and_xla():
    layer = modeling.CounterDropout(0.1, seed=7)
    x = tf.ones([64, 128, 32])
    assert layer(x, training=False) is x
    state = layer.seed_generator.state.numpy()
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert abs((first == 0).mean() - 0.1) < 0.005 and np.allclose(first[first != 0], 1 / 0.9)
    assert (first != second).any()  # The seed advances with each call, as Keras' dropout.
    layer.seed_generator.state.assign(state)  # A resumed run restores the state: the same masks.
    np.testing.assert_array_equal(layer(x, training=True).numpy(), first)
    layer.seed_generator.state.assign(state)
    compiled = tf.function(lambda v: layer(v, training=True), jit_compile=True)
    np.testing.assert_array_equal(compiled(x).numpy(), first)  # Bit-identical under XLA.
    with pytest.raises(ValueError, match="does not support noise_shape"):
        modeling.CounterDropout(0.1, noise_shape=(1, 128, 32))(x, training=True)


def test_every_dropout_in_the_encoders_is_counter_based(small_pretrainer):
    dropouts = [layer for encoder in (small_pretrainer.generator, small_pretrainer.discriminator)
                for layer in encoder._flatten_layers(recursive=True) if isinstance(layer, keras.layers.Dropout)]
    # Per encoder layer: attention probabilities, after attention, after the FFN; plus the shared embeddings'.
    assert len({id(d) for d in dropouts}) == 3 * (2 + 2) + 1
    assert all(type(d) is modeling.CounterDropout for d in dropouts)


def test_encoder_config_round_trip():
    embeddings = modeling.ElectraEmbeddings(100, 16, 32, 2, 0.1, 1e-12, 0.02)
    enc = modeling.ElectraEncoder(embeddings, 32, 2, 2, 64, 0.1, 1e-12, 0.02)
    clone = modeling.ElectraEncoder.from_config(enc.get_config())
    assert clone.get_config() == enc.get_config()
    assert clone.embeddings_project is not None and clone.embeddings.embedding_size == 16


def test_uses_exact_gelu():
    layer = modeling.DiscriminatorHead(4)
    assert layer.dense.activation(tf.constant(1.0)).numpy() == pytest.approx(0.841344746, abs=1e-6)


def test_discriminator_output_bias_sets_the_prior_and_round_trips():
    head = modeling.DiscriminatorHead(4, output_bias=-1.75)
    logits = head(tf.random.normal([2, 3, 8], stddev=0.02))  # A fresh encoder's small outputs.
    np.testing.assert_allclose(logits.numpy(), -1.75, atol=0.01)  # p(replaced) ~ 0.15 from the start.
    clone = modeling.DiscriminatorHead.from_config(head.get_config())
    clone.build([None, 8])
    assert clone.output_bias == -1.75 and float(clone.dense_1.bias[0]) == -1.75
    assert float(modeling.DiscriminatorHead(4)(tf.zeros([1, 8])).numpy()[0]) == 0.0  # The authors' zero bias.


def test_schedule_is_warmup_factor_times_linear_decay():
    s = optimization.ElectraSchedule(1e-3, total_steps=1000, warmup_steps=100)
    assert float(s(0)) == 0.0
    assert float(s(50)) == pytest.approx(1e-3 * 0.95 * 0.5)
    assert float(s(100)) == pytest.approx(1e-3 * 0.9)
    assert float(s(550)) == pytest.approx(1e-3 * 0.45)
    assert float(s(1000)) == 0.0 and float(s(2000)) == 0.0


def test_weight_decay_skips_layer_norm_and_biases(small_pretrainer):
    opt = optimization.create_optimizer(small_pretrainer.config)
    decayed = {v.path for v in small_pretrainer.trainable_variables if opt._use_weight_decay(v)}
    assert decayed and all(p.endswith(("kernel", "embeddings")) for p in decayed)
    skipped = {v.path for v in small_pretrainer.trainable_variables} - decayed
    assert any("layer_norm/gamma" in p for p in skipped) and any(p.endswith("output_bias") for p in skipped)
    assert opt.epsilon == 1e-6 and opt.weight_decay_rate == 0.01


def _authors_adam(w, grads, lr, multiplier, decay, b1=0.9, b2=0.999, eps=1e-6, rate=0.01):
    """The authors' AdamWeightDecayOptimizer transcribed in numpy: no bias correction, decay inside the lr."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        update = m / (np.sqrt(v) + eps)
        if decay:
            update = update + rate * w
        w = w - lr * multiplier * update
    return w


@pytest.mark.parametrize("bias_correction", [False, True])
def test_adam_weight_decay_equals_numpy_transcription(bias_correction):
    rng = np.random.default_rng(0)
    shapes = {"layer_norm/gamma": (6,), "dense/bias": (6,), "dense/kernel": (4, 6)}
    names = {k: k.split("/")[-1] for k in shapes}
    initial = {k: rng.normal(size=s).astype(np.float64) for k, s in shapes.items()}
    variables = {k: keras.Variable(initial[k], name=names[k], dtype="float64") for k in shapes}
    multipliers = {"layer_norm/gamma": 1.0, "dense/bias": 1.0, "dense/kernel": 0.5}
    opt = optimization.AdamWeightDecay(0.01, [(variables[k], m) for k, m in multipliers.items()],
                                       bias_correction=bias_correction, learning_rate=1e-2, epsilon=1e-6)
    grads = {k: [rng.normal(size=s) for _ in range(10)] for k, s in shapes.items()}
    for step in range(10):
        opt.apply([tf.constant(grads[k][step]) for k in shapes], list(variables.values()))
    for k in shapes:
        decay = k == "dense/kernel"
        if bias_correction:
            # Keras' Adam step on the decayed weight: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t),
            # Keras taking the powers of the betas as float32 constants.
            b1, b2 = (float(np.float32(b)) for b in (0.9, 0.999))
            w, m, v = initial[k], 0.0, 0.0
            for t, g in enumerate(grads[k], start=1):
                lr = 1e-2 * multipliers[k]
                w = w - (0.01 * lr * w if decay else 0.0)
                m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
                w = w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + 1e-6)
            expected = w
        else:
            expected = _authors_adam(initial[k], grads[k], 1e-2, multipliers[k], decay)
        np.testing.assert_allclose(variables[k].numpy(), expected, rtol=1e-6, err_msg=k)
    # The two rules must not coincide (early uncorrected steps are several times larger).
    other = _authors_adam(initial["dense/kernel"], grads["dense/kernel"], 1e-2, 0.5, True)
    assert bias_correction == (np.abs(variables["dense/kernel"].numpy() - other).max() > 1e-4)


def test_global_norm_clipping_is_applied():
    v = keras.Variable(np.zeros(4, np.float32))
    opt = keras.optimizers.SGD(learning_rate=1.0)
    norm = optimization.apply_gradients(opt, [tf.constant([3.0, 4.0, 0.0, 0.0])], [v], clip_norm=1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(v.numpy(), [-0.6, -0.8, 0, 0], atol=1e-6)
