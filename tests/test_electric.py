"""Electric: the NCE loss against the authors' definition, the two towers' directions, training, scoring, export."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf, log_softmax

from conftest import SPECIAL_IDS, script_errors
from electra_tf import checkpoint_interop, electric, export, flops, optimization, tokenization
from electra_tf.config import ElectraConfig

ELECTRIC = {"objective": "electric", "generator_kind": "two_tower"}
# A small vocabulary (the special ids 101-103 inside it) keeps the [batch, length, vocab] cloze output small.
SMALL = dict(ELECTRIC, vocab_size=160, hidden_size=64, embedding_size=32, num_attention_heads=1, num_hidden_layers=1,
             intermediate_size=128, max_seq_length=16, train_batch_size=4, dropout_prob=0.0, num_warmup_steps=0,
             learning_rate=1e-3)
TINY_RUN = ["--objective=electric", "--generator_kind=two_tower", "--num_hidden_layers=1", "--max_seq_length=64",
            "--train_batch_size=8", "--eval_batch_size=16", "--num_eval_steps=1", "--steps_per_loop=2",
            "--save_checkpoints_steps=2", "--num_warmup_steps=2"]


def _make(config, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = electric.ElectricPretrainer(config, SPECIAL_IDS)
        model.build_variables()
        model.compile(optimizer=optimization.create_optimizer(config))
        model.optimizer.build(model.trainable_variables)
    return model


def _batch(batch=4, length=16, vocab=160, seed=0):
    """Random words between [CLS] and [SEP], then padding of different lengths."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(104, vocab, size=(batch, length)).astype(np.int32)
    ids[:, 0] = 101
    lengths = [length, length - 3, length - 6, 5][:batch]
    for i, n in enumerate(lengths):
        ids[i, n - 1], ids[i, n:] = 102, 0
    return {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32), "segment_ids": np.zeros_like(ids)}


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layer_norm(x, gamma, beta, eps):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_loss_is_the_authors_electric_objective():
    config = ElectraConfig.from_size("tiny", SMALL)
    model = _make(config)
    features = _batch()
    outputs = model({k: tf.constant(v) for k, v in features.items()}, training=False)
    total, cloze, nce = (float(x) for x in model.compute_losses(features, outputs))
    ids, mask = features["input_ids"], features["input_mask"].astype(np.float64)
    generator = model.cloze_generator

    # _get_cloze_outputs: the towers' states shifted by roll(ltr, -1) / roll(rtl, 1), dense + GELU, LayerNorm,
    # the word embeddings transposed and the output bias, at EVERY position of the unmasked input.
    ltr, rtl = (t.numpy().astype(np.float64)
                for t in generator.towers(ids, features["segment_ids"], features["input_mask"]))
    roll = lambda arr, direction: np.concatenate([arr[:, direction:], arr[:, :direction]], axis=1)  # the authors'
    reprs = np.concatenate([roll(ltr, -1), roll(rtl, 1)], axis=-1)
    head = generator.head
    hidden = _gelu(reprs @ head._intermediate_dense.kernel.numpy() + head._intermediate_dense.bias.numpy())
    norm = head._intermediate_layer_norm
    hidden = _layer_norm(hidden, norm.gamma.numpy(), norm.beta.numpy(), config.layer_norm_eps)
    logits = hidden @ model.embeddings.word_embeddings.embeddings.numpy().T + head._bias.numpy()
    log_q = log_softmax(logits, axis=-1)
    np.testing.assert_allclose(outputs["cloze_log_probs"].numpy(), log_q, atol=2e-4)
    # Its loss: cross-entropy of the original token over get_candidates_mask (real, not [CLS]/[SEP]/[MASK]).
    candidates = mask * ~np.isin(ids, [101, 102, 103])
    token_nll = -np.take_along_axis(log_q, ids[..., None], -1)[..., 0]
    expected_cloze = (token_nll * candidates).sum() / (candidates.sum() + 1e-6)

    # _get_fake_data: samples written at the masked positions only; every masked position labelled fake.
    masked = {k: v.numpy() for k, v in outputs["masked"].items()}
    fake_ids, labels = outputs["fake_ids"].numpy(), outputs["labels"].numpy()
    chosen = np.zeros_like(ids)
    for i in range(len(ids)):
        chosen[i, masked["positions"][i][masked["weights"][i] > 0]] = 1
    assert chosen.sum() == masked["weights"].sum() > 0 and (chosen * (1 - candidates)).sum() == 0
    np.testing.assert_array_equal(labels, chosen)
    np.testing.assert_array_equal(fake_ids[chosen == 0], ids[chosen == 0])
    # _get_discriminator_output with electric_objective: logit += stop_gradient(log q(x_fake)) + log(p / (1 - p)).
    energies = outputs["energies"].numpy().astype(np.float64)
    nce_logits = (energies + np.take_along_axis(log_q, fake_ids[..., None], -1)[..., 0]
                  + np.log(config.mask_prob / (1 - config.mask_prob)))
    bce = np.maximum(nce_logits, 0) - nce_logits * labels + np.log1p(np.exp(-np.abs(nce_logits)))
    expected_nce = (bce * mask).sum() / (mask.sum() + 1e-6)

    assert cloze == pytest.approx(expected_cloze, rel=1e-5)
    assert nce == pytest.approx(expected_nce, rel=1e-4)
    assert total == pytest.approx(config.gen_weight * expected_cloze + config.disc_weight * expected_nce, rel=1e-4)

    # log q is a constant of the NCE loss: its gradient reaches the discriminator, never the generator.
    with tf.GradientTape(persistent=True) as tape:
        outputs = model({k: tf.constant(v) for k, v in features.items()}, training=False)
        nce = model.compute_losses(features, outputs)[2]
    tower_grads = tape.gradient(nce, generator.ltr.transformer_layers[0].trainable_variables
                                + generator.rtl.transformer_layers[0].trainable_variables
                                + head._intermediate_dense.trainable_variables + [head._bias])
    assert all(g is None or not np.any(g.numpy()) for g in tower_grads)
    assert np.any(tape.gradient(nce, model.discriminator_head.trainable_variables[0]).numpy())


def test_left_tower_cannot_see_right_nor_right_tower_left():
    config = ElectraConfig.from_size("tiny", SMALL)
    generator = _make(config).cloze_generator
    features = _batch(batch=1)
    ids, segments, mask = features["input_ids"], features["segment_ids"], features["input_mask"]
    ltr, rtl = (t.numpy() for t in generator.towers(ids, segments, mask))
    log_q = generator(ids, segments, mask).numpy()
    for k in (3, 8):
        changed = ids.copy()
        changed[0, k] = 150 if ids[0, k] != 150 else 151
        ltr2, rtl2 = (t.numpy() for t in generator.towers(changed, segments, mask))
        np.testing.assert_array_equal(ltr2[:, :k], ltr[:, :k])  # Left of k: the left tower did not see it.
        np.testing.assert_array_equal(rtl2[:, k + 1:], rtl[:, k + 1:])
        assert not np.allclose(ltr2[:, k:], ltr[:, k:]) and not np.allclose(rtl2[:, :k + 1], rtl[:, :k + 1])
        # So q(x_k | context) does not read x_k, while its neighbours' predictions do.
        log_q2 = generator(changed, segments, mask).numpy()
        np.testing.assert_allclose(log_q2[0, k], log_q[0, k], atol=1e-6)
        assert not np.allclose(log_q2[0, k - 1], log_q[0, k - 1]) and not np.allclose(log_q2[0, k + 1], log_q[0, k + 1])


def _one_step(config, batch, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    model = _make(config, strategy)
    step = tf.function(model.train_step)
    for replica_batch in strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)):
        strategy.run(step, args=(replica_batch,))
    return model, {v.path.split("/", 1)[1]: v.numpy() for v in model.trainable_variables}


def test_two_replicas_of_micro_batches_give_the_same_step_and_mixed_precision_runs(mirrored_strategy):
    config = ElectraConfig.from_size("tiny", SMALL)
    batch = {k: tf.constant(v) for k, v in _batch().items()}
    reference_model, reference = _one_step(config, batch)
    initial = _make(config)
    moved = [v for v, w in zip(initial.trainable_variables, reference_model.trainable_variables)
             if not np.array_equal(v.numpy(), w.numpy())]
    assert len(moved) > 0.9 * len(initial.trainable_variables)  # Towers, cloze head and discriminator all train.
    # Two replicas, each in two micro-batches: four parts normalised by the global batch's counts.
    split = _one_step(config.replace(gradient_accumulation_steps=2), batch, mirrored_strategy)[1]
    assert split.keys() == reference.keys()
    for name in reference:
        np.testing.assert_allclose(split[name], reference[name], rtol=0, atol=1e-5, err_msg=name)

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _make(config)
        outputs = model(batch, training=True)
        losses = model.compute_losses(batch, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.cloze_generator.ltr.compute_dtype == "bfloat16"
    assert outputs["cloze_log_probs"].dtype == tf.float32 and outputs["disc_logits"].dtype == tf.float32
    assert all(np.isfinite(float(x)) for x in losses)


def test_config_and_flops():
    with pytest.raises(ValueError, match="objective=electric needs generator_kind=two_tower"):
        ElectraConfig.from_size("tiny", {"objective": "electric"})
    with pytest.raises(ValueError, match="objective=electric needs generator_kind=two_tower"):
        ElectraConfig.from_size("tiny", {"generator_kind": "two_tower"})
    with pytest.raises(ValueError, match="generator_kind must be one of"):
        ElectraConfig.from_size("tiny", {"generator_kind": "gan"})
    # Two towers of the generator's size over every token and a cloze head at every position, on top of
    # ELECTRA's discriminator: the difference from ELECTRA is exactly those parts.
    c = ElectraConfig.from_size("small", ELECTRIC)
    seq, electra = c.max_seq_length, flops.flops_per_step(c.replace(objective="electra", generator_kind="mlm"))
    tower = seq * flops.encoder_flops(c.embedding_size, c.generator_hidden, c.generator_num_layers,
                                      c.generator_intermediate, c.generator_heads, seq)
    generator_delta = (tower + seq * flops.mlm_head_flops(2 * c.generator_hidden, c.embedding_size, c.vocab_size)
                       - c.max_predictions_per_seq * flops.mlm_head_flops(c.generator_hidden, c.embedding_size,
                                                                          c.vocab_size))
    assert flops.flops_per_step(c) == electra + 3 * c.train_batch_size * generator_delta


@pytest.fixture(scope="module")
def electric_run(demo_data_dir, tmp_path_factory):
    """Two Electric runs through run_pretraining.py in one process: 4 steps straight, and 2 then resumed to 4."""
    base = tmp_path_factory.mktemp("electric")
    straight, resumed = str(base / "straight"), str(base / "resumed")
    # Op determinism for a bit-exact resume; a constant learning rate after warm-up, since the linear decay's
    # length is num_train_steps, which the 2-step first half of the resumed run would otherwise shorten.
    common = [f"--data_dir={demo_data_dir}", *TINY_RUN, "--deterministic", "--lr_decay_power=0"]
    errors = script_errors("run_pretraining.py", [
        [*common, f"--model_dir={straight}", "--num_train_steps=4", "--probe_every=2"],
        [*common, f"--model_dir={resumed}", "--num_train_steps=2", "--do_eval=false"],
        [*common, f"--model_dir={resumed}", "--num_train_steps=4", "--do_eval=false"],
        [*common, f"--model_dir={base / 'bad'}", "--generator_kind=mlm", "--num_train_steps=1"],
    ], timeout=1800)
    return straight, resumed, errors


def test_run_pretraining_trains_checkpoints_and_resumes_exactly(electric_run):
    straight, resumed, errors = electric_run
    assert errors[:3] == ["", "", ""], errors
    assert "objective=electric needs generator_kind=two_tower" in errors[3]
    with open(os.path.join(straight, "pretraining_summary.json")) as f:
        summary = json.load(f)
    config = ElectraConfig.from_json_file(os.path.join(straight, "config.json"))
    assert summary["objective"] == "electric" and summary["steps"] == 4
    assert summary["train_flops"] == 4 * flops.flops_per_step(config)
    assert np.isfinite(summary["loss"]) and summary["loss"] != summary["initial_eval"]["loss"]
    assert 0 <= summary["probes"]["unigram_auc"] <= 1 and 0 <= summary["disc_auc"] <= 1
    # The cloze loss starts at log(vocab): a uniform q.
    assert summary["initial_eval"]["mlm_loss"] == pytest.approx(np.log(config.vocab_size), abs=0.5)
    saved = tf.train.get_checkpoint_state(resumed).all_model_checkpoint_paths
    assert [int(p.rsplit("-", 1)[1]) for p in saved] == [2, 4]
    a, b = (checkpoint_interop.read_checkpoint(d, "native") for d in (straight, resumed))
    assert "generator_ltr/encoder/layer_0/attention/self/query/kernel" in a and "cloze_predictions/output_bias" in a
    assert a.keys() == b.keys()
    for name in a:  # Resumed after step 2, the run is bit for bit the uninterrupted one.
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_scores_are_the_pseudo_log_likelihood_and_export_serves_them(electric_run, tmp_path):
    straight = electric_run[0]
    module = export.load_serving_module(straight, "electric_scorer")
    sentences = ["the river flows into the sea .", "sea the into flows . river the", "a short one"]
    scores = electric.score_sentences(module.model, module.tokenizer, sentences)
    assert scores.shape == (3,) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, electric.score_sentences(module.model, module.tokenizer, sentences))
    # -sum of the energies over each sentence's word pieces, from the pre-trainer restored from the run.
    config = ElectraConfig.from_json_file(os.path.join(straight, "config.json"))
    tokenizer = tokenization.WordPieceTokenizer.for_config(os.path.join(straight, "vocab.txt"), config)
    pretrainer = _make(config)
    checkpoint_interop.load_into(checkpoint_interop.variable_names(pretrainer), straight)
    for sentence, score in zip(sentences, scores):
        pieces = tokenizer(tf.constant([sentence])).to_tensor().numpy()[0]
        ids = np.concatenate([[tokenizer.cls_id], pieces, [tokenizer.sep_id]]).astype(np.int32)[None]
        energies = pretrainer.energies({"input_ids": ids, "input_mask": np.ones_like(ids),
                                        "segment_ids": np.zeros_like(ids)}).numpy()
        assert score == pytest.approx(-energies[0, 1:-1].sum(), rel=1e-4, abs=1e-4)
    assert np.allclose(electric.score_sentences(pretrainer, tokenizer, sentences), scores, atol=1e-4)
    with pytest.raises(ValueError, match="sentence 1 .* longer than max_seq_length=8"):
        electric.score_sentences(module.model, module.tokenizer, ["short", " ".join(["word"] * 20)], max_seq_length=8)

    # The SavedModel takes raw text and answers the same scores, per token too.
    path = export.export_model(straight, str(tmp_path), "electric_scorer")
    served = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(sentences))
    np.testing.assert_allclose(served["score"].numpy(), scores, atol=1e-4)
    np.testing.assert_allclose(served["token_scores"].numpy().sum(-1), scores, atol=1e-4)
    assert not served["truncated"].numpy().any() and served["tokens"].numpy()[0, 1] == b"the"
    with pytest.raises(ValueError, match="objective=electric model: pass --kind=electric_scorer"):
        export.load_serving_module(straight, "discriminator")
