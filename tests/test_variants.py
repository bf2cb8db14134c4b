"""The paper's pre-training variants, each checked against its definition on a fixed tiny batch.

Losses are recomputed in numpy from the model's own outputs following the
paper's (or the authors') definition: which positions count, what the
full-size model reads, what it predicts.
"""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import checkpoint_interop, optimization, training
from electra_tf.config import ElectraConfig
from electra_tf.pretrainer import ElectraPretrainer, copy_mixture_log_likelihood

SPECIAL = {"cls": 1, "sep": 2, "mask": 3}
VOCAB, LENGTH = 60, 16
# No dropout, so the test can rerun a network on the model's own inputs and get the same numbers.
TINY = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_seq_length=LENGTH, max_position_embeddings=LENGTH, dropout_prob=0.0,
            generator_hidden_size=0.5, train_batch_size=4, num_warmup_steps=0, learning_rate=1e-3)


def _batch():
    rng = np.random.default_rng(7)
    ids = rng.integers(4, VOCAB, size=(4, LENGTH)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0  # One padded example: padding is never masked and never counted.
    ids[:, 0], ids[1, 10], ids[[0, 2, 3], -1] = SPECIAL["cls"], SPECIAL["sep"], SPECIAL["sep"]
    ids *= mask
    return {"input_ids": tf.constant(ids), "input_mask": tf.constant(mask), "segment_ids": tf.zeros_like(ids)}


def _model(unigram=None, **overrides):
    config = ElectraConfig.from_size("tiny", {**TINY, **overrides})
    keras.utils.set_random_seed(0)
    model = ElectraPretrainer(config, SPECIAL, unigram=unigram)
    model.build_variables()
    return model


def _run(model):
    features = _batch()
    outputs = model(features, training=False)
    losses = [float(x) for x in model.compute_losses(features, outputs)]
    return features, {k: v for k, v in outputs.items() if k != "masked"}, outputs["masked"], losses


def _np(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _bce(labels, logits):
    logits = logits.astype(np.float64)
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def _chosen(masked, shape):
    """1.0 at the positions masking chose (the slots with weight 1), from the slot lists."""
    chosen = np.zeros(shape)
    for b, (positions, weights) in enumerate(zip(_np(masked["positions"]), _np(masked["weights"]))):
        chosen[b, positions[weights > 0]] = 1.0
    return chosen


def _mlm_loss(logits, targets, weights):
    ce = -np.take_along_axis(_log_softmax(_np(logits)), _np(targets)[..., None], -1)[..., 0]
    return (ce * _np(weights)).sum() / (_np(weights).sum() + 1e-6)


@pytest.mark.parametrize("sharing", ["none", "embeddings", "all"])
def test_weight_sharing_shares_exactly_its_variables(sharing):
    extra = {"generator_hidden_size": 1.0} if sharing == "all" else {}
    model = _model(weight_sharing=sharing, **extra)
    gen, disc = model.generator, model.discriminator
    shared = {id(v) for v in gen.weights} & {id(v) for v in disc.weights}
    embedding_block = {id(v) for v in model.embeddings.weights}
    assert len(embedding_block) == 5  # word, position, token-type tables, LayerNorm gamma and beta.
    heads = len(model.generator_head.weights) - 1 + len(model.discriminator_head.weights)  # less the tied table
    unique = {id(v) for v in model.trainable_variables}
    if sharing == "none":
        # The authors' untied generator: its own embedding block, at its own hidden size (no projection).
        assert not shared and gen.embeddings_project is None
        assert tuple(gen.embeddings.word_embeddings.embeddings.shape) == (VOCAB, 16)
        assert model.generator_head.token_embedding is gen.embeddings.word_embeddings
        assert len(unique) == len(gen.weights) + len(disc.weights) + heads
    elif sharing == "embeddings":
        assert shared == embedding_block
        assert len(unique) == len(gen.weights) + len(disc.weights) - 5 + heads
    else:
        # One encoder: the generator is the discriminator, with its own masked-LM head on it.
        assert gen is disc and len(unique) == len(disc.weights) + heads
    names = checkpoint_interop.variable_names(model)
    assert len(names) == len(unique) == len({id(v) for v in names.values()})
    assert ("generator/embeddings/word_embeddings" in names) == (sharing == "none")
    assert any(n.startswith("generator/encoder/") for n in names) == (sharing != "all")


def test_weight_sharing_all_needs_a_full_size_generator():
    with pytest.raises(ValueError, match=r"weight_sharing='all' needs a generator the discriminator's size: set "
                                         r"generator_hidden_size and generator_layers to 1.0 \(got 0.5, 1.0\)"):
        ElectraConfig.from_size("tiny", {**TINY, "weight_sharing": "all"})
    with pytest.raises(ValueError, match="weight_sharing must be one of"):
        ElectraConfig.from_size("tiny", {**TINY, "weight_sharing": "some"})
    with pytest.raises(ValueError, match="weight_sharing='none' needs a generator network"):
        ElectraConfig.from_size("tiny", {**TINY, "generator_kind": "uniform", "weight_sharing": "none"})


@pytest.mark.parametrize("kind", ["uniform", "unigram"])
def test_fixed_generators_sample_from_their_distribution_and_have_no_weights(kind):
    unigram = None
    if kind == "unigram":
        unigram = np.zeros(VOCAB)
        unigram[[10, 11, 12]] = [0.5, 0.3, 0.2]
    model = _model(unigram=unigram, generator_kind=kind)
    assert model.generator is None and model.generator_head is None
    assert {id(v) for v in model.trainable_variables} == \
        {id(v) for v in model.discriminator.weights + model.discriminator_head.weights}
    features, outputs, masked, (total, mlm_loss, disc_loss) = _run(model)
    # The authors' uniform generator: zero logits over the whole vocabulary; unigram: log frequencies.
    logits = np.zeros(VOCAB) if kind == "uniform" else np.log(np.maximum(unigram, 1e-12))
    targets, weights = _np(masked["ids"]), _np(masked["weights"])
    expected_mlm = _mlm_loss(np.broadcast_to(logits, targets.shape + (VOCAB,)), targets, weights)
    assert mlm_loss == pytest.approx(expected_mlm, rel=1e-5)
    if kind == "uniform":
        assert mlm_loss == pytest.approx(np.log(VOCAB), rel=1e-5)
    chosen = _chosen(masked, (4, LENGTH)) > 0
    fake, ids = _np(outputs["fake_ids"]), _np(features["input_ids"])
    assert np.array_equal(fake[~chosen], ids[~chosen])
    if kind == "unigram":
        assert set(fake[chosen]) <= {10, 11, 12}
    labels = (fake != ids).astype(np.float64)
    assert np.array_equal(_np(outputs["labels"]), labels)
    input_mask = _np(features["input_mask"])
    expected_disc = (_bce(labels, _np(outputs["disc_logits"])) * input_mask).sum() / (input_mask.sum() + 1e-6)
    assert disc_loss == pytest.approx(expected_disc, rel=1e-5)
    assert total == pytest.approx(mlm_loss + 50.0 * disc_loss, rel=1e-5)


def test_unigram_generator_needs_its_distribution():
    with pytest.raises(ValueError, match="generator_kind='unigram' needs the corpus's unigram distribution"):
        _model(generator_kind="unigram")
    with pytest.raises(ValueError, match="unigram: expected 60 probabilities summing to 1"):
        _model(unigram=np.ones(VOCAB), generator_kind="unigram")


def test_electra_15_counts_the_discriminator_loss_on_the_masked_positions_only():
    model = _model(objective="electra_15")
    features, outputs, masked, (total, mlm_loss, disc_loss) = _run(model)
    chosen = _chosen(masked, (4, LENGTH))
    labels = _np(outputs["labels"]).astype(np.float64)
    expected = (_bce(labels, _np(outputs["disc_logits"])) * chosen).sum() / (chosen.sum() + 1e-6)
    assert disc_loss == pytest.approx(expected, rel=1e-5)
    everywhere = (_bce(labels, _np(outputs["disc_logits"])) * _np(features["input_mask"])).sum() / \
        _np(features["input_mask"]).sum()
    assert abs(disc_loss - everywhere) > 0.1  # It is not ELECTRA's loss over all tokens.
    assert mlm_loss == pytest.approx(_mlm_loss(outputs["mlm_logits"], masked["ids"], masked["weights"]), rel=1e-5)
    assert total == pytest.approx(mlm_loss + 50.0 * disc_loss, rel=1e-5)


def test_replace_mlm_trains_the_full_model_as_a_masked_lm_of_the_samples():
    model = _model(objective="replace_mlm")
    assert model.discriminator_head is None and model.copy_head is None
    features, outputs, masked, (total, mlm_loss, disc_loss) = _run(model)
    chosen = _chosen(masked, (4, LENGTH)) > 0
    fake, ids = _np(outputs["fake_ids"]), _np(features["input_ids"])
    # The masked positions hold the generator's samples, not [MASK]; the rest is the input.
    assert np.array_equal(fake[~chosen], ids[~chosen])
    assert (_np(masked["input_ids"])[chosen] == SPECIAL["mask"]).sum() > (fake[chosen] == SPECIAL["mask"]).sum()
    # The full-size model reads the samples: its logits are those of the encoder run on fake_ids.
    hidden = model.discriminator(outputs["fake_ids"], features["segment_ids"], features["input_mask"])
    again = model.discriminator_mlm_head(hidden, mask_positions=masked["positions"])
    np.testing.assert_allclose(_np(again), _np(outputs["disc_mlm_logits"]), atol=1e-5)
    # ... and predicts the original tokens at the masked positions only.
    assert disc_loss == pytest.approx(_mlm_loss(outputs["disc_mlm_logits"], masked["ids"], masked["weights"]),
                                      rel=1e-5)
    assert total == pytest.approx(mlm_loss + disc_loss, rel=1e-5)


def test_all_tokens_mlm_predicts_every_token_through_the_copy_mechanism():
    model = _model(objective="all_tokens_mlm")
    features, outputs, masked, (total, mlm_loss, disc_loss) = _run(model)
    logits, copy_logits = _np(outputs["disc_mlm_logits"]), _np(outputs["copy_logits"]).astype(np.float64)
    assert logits.shape == (4, LENGTH, VOCAB)
    ids, fake, input_mask = _np(features["input_ids"]), _np(outputs["fake_ids"]), _np(features["input_mask"])
    # The paper: p(x_t) = D * 1[x_t = input token] + (1 - D) * softmax, D the sigmoid copy probability.
    copy = 1.0 / (1.0 + np.exp(-copy_logits))
    p = copy[..., None] * np.eye(VOCAB)[fake] + (1 - copy[..., None]) * np.exp(_log_softmax(logits))
    p_original = np.take_along_axis(p, ids[..., None], -1)[..., 0]
    expected = -(np.log(p_original) * input_mask).sum() / (input_mask.sum() + 1e-6)
    assert disc_loss == pytest.approx(expected, rel=1e-5)
    assert total == pytest.approx(mlm_loss + disc_loss, rel=1e-5)
    # Copying a replaced token is penalised: at a replaced position the loss grows with the copy probability,
    # at a kept one it falls, so D is not trivially 1.
    z = tf.Variable([[2.0, 2.0]])
    row_logits = tf.constant(np.random.default_rng(1).normal(size=(1, 2, VOCAB)), tf.float32)
    with tf.GradientTape() as tape:
        loss = -copy_mixture_log_likelihood(row_logits, z, tf.constant([[5, 6]]), tf.constant([[5, 9]]))
    kept, replaced = tape.gradient(loss, z).numpy()[0]
    assert kept < 0 < replaced


def test_two_stage_config_rules():
    two_stage = {**TINY, "two_stage_generator_steps": 2, "num_train_steps": 4, "generator_hidden_size": 1.0,
                 "weight_sharing": "none", "embedding_size": 32}
    ElectraConfig.from_size("tiny", two_stage)
    for change, message in (({"weight_sharing": "embeddings"}, "goes with objective='electra', generator_kind="),
                            ({"embedding_size": 16}, "set embedding_size to it"),
                            ({"generator_hidden_size": 0.5}, "two_stage_generator_steps > 0 needs a generator"),
                            ({"num_train_steps": 2}, "leaves no step")):
        with pytest.raises(ValueError, match=message):
            ElectraConfig.from_size("tiny", {**two_stage, **change})


TWO_STAGE = {"two_stage_generator_steps": 2, "num_train_steps": 4, "generator_hidden_size": 1.0,
             "weight_sharing": "none", "embedding_size": 32, "steps_per_loop": 1, "save_checkpoints_steps": 2}


def _trainer(model_dir):
    model = _model(**TWO_STAGE)
    model.compile(optimizer=optimization.create_optimizer(model.config))
    model.optimizer.build(model.trainable_variables)
    trainer = training.Trainer(model, tf.distribute.get_strategy(), str(model_dir))
    batch = _batch()

    def train(num_steps, restore=True):
        return trainer.train(lambda context, start: tf.data.Dataset.from_tensors(batch).repeat(), num_steps, 1, 2,
                             4 * LENGTH, restore=restore)

    return model, train


def _values(layers):
    return [v.numpy() for layer in layers for v in layer.weights]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_two_stage_trains_the_generator_alone_then_the_discriminator_from_it_with_the_generator_frozen(tmp_path):
    model, train = _trainer(tmp_path / "a")
    gen_side, disc_side = (model.generator, model.generator_head), (model.discriminator, model.discriminator_head)
    initial = {"gen": _values(gen_side), "disc": _values(disc_side)}
    snapshots = []

    def recorded(num_steps, restore):
        summary = train(num_steps, restore)
        snapshots.append({"gen": _values(gen_side), "disc": _values(disc_side)})
        return summary

    summary = model.train_in_stages(recorded)
    assert summary["steps"] == 4 and [s["steps"] for s in summary["stages"]] == [2, 4]
    first, last = snapshots
    # Stage 1: the generator learns, the discriminator is untouched (no update, no weight decay).
    assert not _same(first["gen"], initial["gen"]) and _same(first["disc"], initial["disc"])
    # Stage 2: the generator is frozen; the discriminator started from the generator's weights: a word
    # vector no token of the batch uses has moved only by weight decay from the generator's.
    assert _same(last["gen"], first["gen"]) and not _same(last["disc"], first["disc"])
    unused = sorted(set(range(VOCAB)) - set(_batch()["input_ids"].numpy().ravel()))[0]
    disc_row = model.discriminator.embeddings.word_embeddings.embeddings.numpy()[unused]
    gen_row = model.generator.embeddings.word_embeddings.embeddings.numpy()[unused]
    np.testing.assert_allclose(disc_row, gen_row, rtol=1e-4)
    assert model.set_stage(2) is None and {id(v) for v in model.trainable_variables} == \
        {id(v) for layer in disc_side for v in layer.weights}

    # Killed right after the boundary's checkpoint (which holds the weights before the copy): the resumed run
    # restores it, copies again and goes on without restoring over the copy.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for stale in (tmp_path / "b").glob("ckpt-4.*"):
        stale.unlink()
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path / "b"), "ckpt-2", ["ckpt-2"])
    resumed, train_b = _trainer(tmp_path / "b")
    calls = []

    def second_stage_recorded(num_steps, restore):
        if num_steps == 2:
            return train_b(num_steps, restore)  # Restores step 2 and finds nothing to do.
        calls.append((num_steps, restore))
        return {"steps": num_steps, "preempted": False}

    resumed.train_in_stages(second_stage_recorded)
    assert calls == [(4, False)]
    assert _same(_values((resumed.generator, resumed.generator_head)), first["gen"])
    assert _same(_values([resumed.discriminator]), _values([resumed.generator]))
    assert _same(_values([resumed.discriminator_head]), initial["disc"][-4:])


def _mixed_float16_step(**overrides):
    """(model, logs, outputs, moved) of one eager step in mixed_float16 of the tiny model: its logs, its outputs
    after the step and the ids of the variables the step changed."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model(**overrides)
        model.compile(optimizer=optimization.create_optimizer(model.config))
        model.optimizer.build(model.trainable_variables)
        before = [v.numpy() for v in model.trainable_variables]
        logs = model.train_step(_batch())
        outputs = model(_batch(), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.discriminator.compute_dtype == "float16" and model.generator.compute_dtype == "float16"
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert int(model.optimizer.iterations) == 1
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)
    moved = {id(v) for v, old in zip(model.trainable_variables, before) if not np.array_equal(v.numpy(), old)}
    return model, logs, outputs, moved


def test_all_tokens_mlm_trains_in_mixed_float16():
    # The float16 encoders feed float32 masked-LM and copy heads, and the loss scale holds.
    _, logs, outputs, _ = _mixed_float16_step(objective="all_tokens_mlm", weight_sharing="none")
    assert "disc_mlm_loss" in logs
    assert outputs["disc_mlm_logits"].dtype == tf.float32 and outputs["copy_logits"].dtype == tf.float32


def test_variants_refuse_what_they_do_not_build():
    electric = {**TINY, "objective": "electric", "generator_kind": "two_tower"}
    with pytest.raises(ValueError, match="objective=electric shares the embeddings .* must be 'embeddings', got 'none'"):
        ElectraConfig.from_size("tiny", {**electric, "weight_sharing": "none"})
    with pytest.raises(ValueError, match="ElectraPretrainer: objective=electric is trained by electric.ElectricPretrainer"):
        ElectraPretrainer(ElectraConfig.from_size("tiny", electric), SPECIAL)
    with pytest.raises(ValueError, match="objective='mlm' trains no generator; generator_kind='uniform'"):
        ElectraConfig.from_size("tiny", {**TINY, "objective": "mlm", "generator_kind": "uniform"})
    with pytest.raises(ValueError, match="objective must be one of"):
        ElectraConfig.from_size("tiny", {**TINY, "objective": "adversarial"})


UNIGRAM = np.full(VOCAB, 1.0 / VOCAB)
RESUMED = {"electra_15": {"objective": "electra_15"}, "replace_mlm": {"objective": "replace_mlm"},
           "all_tokens_mlm": {"objective": "all_tokens_mlm"}, "untied": {"weight_sharing": "none"},
           "all_shared": {"weight_sharing": "all", "generator_hidden_size": 1.0},
           "uniform": {"generator_kind": "uniform"}, "unigram": {"generator_kind": "unigram"},
           "adversarial": {"generator_training": "adversarial"}}


@pytest.mark.parametrize("variant", sorted(RESUMED))
def test_every_variant_resumes_exactly(variant, tmp_path):
    # 4 steps in one go against 2, a new process's worth of objects restoring the checkpoint, then 2 more.
    # Dropout on: its seeds must come back too.
    overrides = {**RESUMED[variant], "num_train_steps": 4, "dropout_prob": 0.1}

    def run(model_dir, steps):
        model = _model(unigram=UNIGRAM, **overrides)
        model.compile(optimizer=optimization.create_optimizer(model.config))
        model.optimizer.build(model.trainable_variables)
        trainer = training.Trainer(model, tf.distribute.get_strategy(), str(model_dir))
        batch = _batch()
        trainer.train(lambda context, start: tf.data.Dataset.from_tensors(batch).repeat(), steps, 1, 2, 4 * LENGTH)
        return model

    straight = [v.numpy() for v in run(tmp_path / "straight", 4).weights]
    halfway = [v.numpy() for v in run(tmp_path / "resumed", 2).weights]
    resumed = run(tmp_path / "resumed", 4)
    assert int(resumed.optimizer.iterations) == 4 and len(resumed.weights) == len(straight)
    assert _same([v.numpy() for v in resumed.weights], straight) and not _same(halfway, straight)


def _sampling_log_softmax(logits, original_ids, temperature, disallow_correct):
    """log p_G of the distribution the samples are drawn from: at the temperature, the original excluded or not."""
    logits = _np(logits).astype(np.float64) / temperature
    if disallow_correct:
        logits = logits - 1000.0 * np.eye(VOCAB)[_np(original_ids)]
    return _log_softmax(logits)


@pytest.mark.parametrize("sampling", [{}, {"temperature": 2.0, "disallow_correct": True}])
def test_adversarial_electra_trains_the_generator_by_reinforce_on_the_discriminator_loss(sampling):
    model = _model(generator_training="adversarial", **sampling)
    features = _batch()
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(features, training=False)
        total, mlm_loss, disc_loss = model.compute_losses(features, outputs)
        num_predictions = model.loss_denominators(features)[0]
        policy_loss, baseline_loss = model.adversarial_losses(outputs, num_predictions)
    masked = outputs["masked"]
    at, weights = _np(masked["positions"]), _np(masked["weights"])
    # The reward of a sample: the discriminator's loss at its position, -log P(original) where it replaced the
    # original, -log P(replaced) where it happens to equal it.
    labels = np.take_along_axis(_np(outputs["labels"]), at, -1)
    reward = _bce(labels, np.take_along_axis(_np(outputs["disc_logits"]), at, -1))
    sampled = _np(outputs["sampled_ids"])
    assert np.array_equal(sampled[weights > 0], np.take_along_axis(_np(outputs["fake_ids"]), at, -1)[weights > 0])
    log_p = np.take_along_axis(_sampling_log_softmax(outputs["mlm_logits"], masked["ids"], model.config.temperature,
                                                     model.config.disallow_correct), sampled[..., None], -1)[..., 0]
    # The baseline reads the generator's state at the masked position.
    hidden = model.generator(masked["input_ids"], features["segment_ids"], features["input_mask"])
    baseline = _np(model.baseline_head(tf.gather(hidden, masked["positions"], batch_dims=1))).astype(np.float64)
    np.testing.assert_allclose(_np(outputs["baseline"]), baseline, atol=1e-5)
    count = weights.sum() + 1e-6
    expected_policy = -((reward - baseline) * log_p * weights).sum() / count
    expected_baseline = ((baseline - reward) ** 2 * weights).sum() / count
    assert float(policy_loss) == pytest.approx(expected_policy, rel=1e-4, abs=1e-6)
    assert float(baseline_loss) == pytest.approx(expected_baseline, rel=1e-4)
    # The discriminator's loss is ELECTRA's; the generator's masked-LM loss is reported, not trained.
    input_mask = _np(features["input_mask"])
    expected_disc = (_bce(_np(outputs["labels"]), _np(outputs["disc_logits"])) * input_mask).sum() / input_mask.sum()
    assert float(disc_loss) == pytest.approx(expected_disc, rel=1e-5)
    assert float(mlm_loss) == pytest.approx(_mlm_loss(outputs["mlm_logits"], masked["ids"], weights), rel=1e-5)
    assert float(total) == pytest.approx(expected_policy + expected_baseline + 50.0 * expected_disc, rel=1e-5)

    # The policy loss trains the generator (and the embeddings it shares), never the discriminator or the
    # baseline; the baseline's loss trains the baseline head alone.
    embedding_block = {id(v) for v in model.embeddings.weights}
    disc_only = [v for v in model.discriminator.trainable_variables + model.discriminator_head.trainable_variables
                 if id(v) not in embedding_block]
    gen_side = model.generator.trainable_variables + model.generator_head.trainable_variables
    baseline_head = model.baseline_head.trainable_variables
    assert all(g is None for g in tape.gradient(policy_loss, disc_only + baseline_head))
    assert all(g is not None for g in tape.gradient(policy_loss, gen_side))
    assert all(g is None for g in tape.gradient(baseline_loss, disc_only + gen_side))
    assert all(g is not None for g in tape.gradient(baseline_loss, baseline_head))

    # The mean reward is a metric; the baseline head is checkpointed under its own name.
    model._metrics.update(features, outputs, total, mlm_loss, disc_loss, share=1)
    assert float(model._metrics.reward.result()) == pytest.approx((reward * weights).sum() / weights.sum(), rel=1e-5)
    names = checkpoint_interop.variable_names(model)
    assert sorted(n for n in names if n.startswith("generator_baseline/")) == [
        "generator_baseline/dense/bias", "generator_baseline/dense/kernel",
        "generator_baseline/dense_1/bias", "generator_baseline/dense_1/kernel"]
    assert len(names) == len({id(v) for v in model.trainable_variables})


def test_adversarial_electra_trains_in_mixed_float16():
    # The float16 generator feeds a float32 baseline head; the policy gradient moves the generator.
    model, logs, outputs, moved = _mixed_float16_step(generator_training="adversarial")
    trained = model.generator.trainable_variables + model.baseline_head.trainable_variables
    assert {id(v) for v in trained} <= moved
    assert "reward" in logs and logs["reward"] > 0
    assert outputs["baseline"].dtype == tf.float32 and outputs["mlm_logits"].dtype == tf.float32


def test_adversarial_config_rules():
    for change, values in (({"objective": "mlm"}, "objective='mlm', generator_kind='mlm'"),
                           ({"objective": "replace_mlm"}, "objective='replace_mlm'"),
                           ({"generator_kind": "uniform"}, "generator_kind='uniform'"),
                           ({"two_stage_generator_steps": 2, "num_train_steps": 4, "generator_hidden_size": 1.0,
                             "weight_sharing": "none", "embedding_size": 32}, "two_stage_generator_steps=2")):
        with pytest.raises(ValueError, match=r"generator_training='adversarial' trains a masked-LM generator to fool "
                                             r"the discriminator, so it needs objective in \('electra', 'electra_15'\), "
                                             r"generator_kind='mlm' and two_stage_generator_steps=0; got .*" + values):
            ElectraConfig.from_size("tiny", {**TINY, "generator_training": "adversarial", **change})
    with pytest.raises(ValueError, match=r"generator_training must be one of \('mle', 'adversarial'\), got 'gan'"):
        ElectraConfig.from_size("tiny", {**TINY, "generator_training": "gan"})
    ElectraConfig.from_size("tiny", {**TINY, "generator_training": "adversarial", "objective": "electra_15"})
