"""Scale-out and faults: replicas, micro-batches and XLA give the same step; precision; non-finite steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_pretrainer
from electra_tf import distribution, optimization, pretraining_data, training
from electra_tf.config import ElectraConfig

# No dropout: its masks are per-layer random streams, which differ between
# replicas by design; everything else in a step must not depend on the split.
EXACT = {"max_seq_length": 64, "train_batch_size": 8, "dropout_prob": 0.0, "num_warmup_steps": 0,
         "learning_rate": 1e-3, "num_hidden_layers": 1}


def _global_batch(data_dir, size=8):
    files = pretraining_data.tfrecord_files(data_dir, "eval_data")
    return next(iter(pretraining_data.make_dataset(files, size, 64, is_training=False)))


def _one_step(config, batch, strategy=None, jit_compile=False):
    strategy = strategy or tf.distribute.get_strategy()
    model = make_pretrainer(config, strategy)
    step = tf.function(model.train_step, jit_compile=jit_compile)
    for replica_batches in strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)):
        strategy.run(step, args=(replica_batches,))
    assert int(model.optimizer.iterations.numpy()) == 1
    return model, {v.path.split("/", 1)[1]: v.numpy() for v in model.trainable_variables}


def _assert_same(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=atol, err_msg=name)


def test_two_replicas_micro_batches_and_xla_all_equal_one_plain_step(demo_data_dir, mirrored_strategy):
    config = ElectraConfig.from_size("tiny", EXACT)
    batch = _global_batch(demo_data_dir)
    reference_model, reference = _one_step(config, batch)
    initial = make_pretrainer(config).trainable_variables
    moved = [v.path for v, w in zip(initial, reference_model.trainable_variables)
             if not np.array_equal(v.numpy(), w.numpy())]
    assert len(moved) > 0.9 * len(initial)  # The step really updated the weights.

    _, two_replicas = _one_step(config, batch, strategy=mirrored_strategy)
    _assert_same(reference, two_replicas)

    accumulated_model, accumulated = _one_step(config.replace(gradient_accumulation_steps=4), batch)
    _assert_same(reference, accumulated)
    # Metrics see the whole batch, not the last micro-batch.
    assert accumulated_model.metrics[0].count.numpy() == 4

    _, xla = _one_step(config, batch, jit_compile=True)
    _assert_same(reference, xla)


@pytest.mark.parametrize("variant", [
    # All-Tokens MLM with an untied generator: other heads, other variables, a loss over every token.
    {"objective": "all_tokens_mlm", "weight_sharing": "none"},
    # Adversarial ELECTRA: a policy loss and a baseline over the masked positions, a mean reward as a metric.
    {"generator_training": "adversarial"},
])
def test_a_variant_steps_the_same_on_two_replicas_and_in_micro_batches(variant, demo_data_dir, mirrored_strategy):
    # A 1,000-token vocabulary (ids above it folded into its upper half, clear of the special ids) keeps the
    # softmaxes cheap.
    config = ElectraConfig.from_size("tiny", dict(EXACT, vocab_size=1000, **variant))
    batch = dict(_global_batch(demo_data_dir))
    batch["input_ids"] = tf.where(batch["input_ids"] < 1000, batch["input_ids"], 999 - batch["input_ids"] % 500)
    reference_model, reference = _one_step(config, batch)
    replicas_model, two_replicas = _one_step(config, batch, strategy=mirrored_strategy)
    _assert_same(reference, two_replicas)
    accumulated_model, accumulated = _one_step(config.replace(gradient_accumulation_steps=2), batch)
    _assert_same(reference, accumulated)
    for model in (replicas_model, accumulated_model):  # The metrics too, the mean reward included.
        for metric, expected in zip(model.metrics, reference_model.metrics):
            assert float(metric.result()) == pytest.approx(float(expected.result()), rel=1e-4), metric.name


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_without_nan(policy, demo_data_dir, tmp_path):
    config = ElectraConfig.from_size("tiny", dict(EXACT, train_batch_size=4))
    batch = _global_batch(demo_data_dir, 4)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = make_pretrainer(config)
        step = tf.function(model.train_step)
        for _ in range(3):
            logs = step(batch)
        outputs = model(dict(batch), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert model.discriminator.compute_dtype == policy.split("_")[1]
    assert outputs["disc_logits"].dtype == tf.float32 and outputs["mlm_logits"].dtype == tf.float32
    assert model.guard.dynamic_loss_scale == (policy == "mixed_float16")
    assert int(model.optimizer.iterations) + int(model.guard.good_steps) > 0
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)


def test_a_nonfinite_step_is_skipped_and_counted_or_stops_the_run(demo_data_dir, tmp_path):
    config = ElectraConfig.from_size("tiny", dict(EXACT, steps_per_loop=1, save_checkpoints_steps=1))
    model = make_pretrainer(config)
    embeddings = model.embeddings.word_embeddings.embeddings
    embeddings.assign(tf.tensor_scatter_nd_update(embeddings, [[101]], [tf.fill([128], np.nan)]))  # [CLS]
    untouched = model.discriminator_head.dense.kernel.numpy().copy()
    files = pretraining_data.tfrecord_files(demo_data_dir, "pretrain_data")

    def dataset_fn(context, start_step):
        return pretraining_data.make_dataset(files, 8, 64, True, start_step=start_step)

    strategy = tf.distribute.get_strategy()
    skipping = training.Trainer(model, strategy, str(tmp_path), guard=model.guard, skip_nonfinite=True)
    logs = skipping.train(dataset_fn, 2, 1, 1, 8 * 64)
    assert logs["nonfinite_steps"] == 2 and int(model.guard.last_nonfinite_step) == 1
    assert int(model.optimizer.iterations) == 2  # Skipped steps count, so the run ends...
    np.testing.assert_array_equal(untouched, model.discriminator_head.dense.kernel.numpy())  # ...but move no weight.

    stopping = training.Trainer(model, strategy, str(tmp_path / "stop"), guard=model.guard)
    with pytest.raises(FloatingPointError, match=r"step 2: the loss or gradient is not finite"):
        stopping.train(dataset_fn, 4, 1, 1, 8 * 64)


def test_update_guard_halves_the_float16_scale_on_overflow_and_grows_it_back():
    guard = optimization.UpdateGuard(dynamic_loss_scale=True, initial_scale=1024.0, growth_interval=2)
    guard.build(())
    assert not bool(guard.update(tf.constant(False), tf.constant(True), 7))  # Overflow: skip, no fault.
    assert float(guard.loss_scale) == 512.0 and int(guard.nonfinite_steps) == 0
    guard.update(tf.constant(True), tf.constant(True), 8)
    guard.update(tf.constant(True), tf.constant(True), 9)
    assert float(guard.loss_scale) == 1024.0
    guard.update(tf.constant(False), tf.constant(False), 10)  # A non-finite loss is a fault.
    assert int(guard.nonfinite_steps) == 1 and int(guard.last_nonfinite_step) == 10


def test_xla_default_on_cpu_follows_the_run_length_and_replicas():
    assert not tf.config.list_logical_devices("GPU")  # The rule below is CPU's.
    steps = distribution.XLA_CPU_MIN_STEPS
    assert distribution.default_jit_compile(steps) and not distribution.default_jit_compile(steps - 1)
    assert not distribution.default_jit_compile(steps, replicas=2)  # XLA cannot span logical CPU devices.
    assert not distribution.default_jit_compile(None)  # Unknown length: fine-tuning keeps the plain step.
