import numpy as np
import pytest
import tensorflow as tf

from conftest import make_pretrainer
from electra_tf import pretraining_data, training
from electra_tf.config import ElectraConfig

# The demo fixture is built at length 64; a small batch keeps steps quick.
OVERRIDES = {"max_seq_length": 64, "train_batch_size": 16, "eval_batch_size": 32, "learning_rate": 2e-3,
             "num_warmup_steps": 5, "steps_per_loop": 5, "save_checkpoints_steps": 10}


def _train(config, data_dir, model_dir, steps, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    model = make_pretrainer(config, strategy)
    trainer = training.Trainer(model, strategy, str(model_dir))
    files = pretraining_data.tfrecord_files(data_dir, "pretrain_data")

    def dataset_fn(context, start_step):
        return pretraining_data.make_dataset(files, config.train_batch_size, config.max_seq_length, True,
                                             seed=config.seed, input_context=context, start_step=start_step)

    logs = trainer.train(dataset_fn, steps, config.steps_per_loop, config.save_checkpoints_steps,
                         config.train_batch_size * config.max_seq_length)
    return model, trainer, logs


def _eval(trainer, data_dir, config):
    files = pretraining_data.tfrecord_files(data_dir, "eval_data")
    return trainer.evaluate(pretraining_data.make_dataset(files, config.eval_batch_size, config.max_seq_length,
                                                          False), num_steps=4)


def test_losses_fall_on_real_text(demo_data_dir, tmp_path):
    # From the authors' zero output bias, so the discriminator must learn the prior too.
    config = ElectraConfig.from_size("tiny", dict(OVERRIDES, num_train_steps=30, disc_output_bias=0.0))
    model, trainer, logs = _train(config, demo_data_dir, tmp_path / "a", 30)
    assert logs["steps"] == 30 and logs["tokens"] == 30 * 16 * 64
    # Saved at the multiples of save_checkpoints_steps, so a step's checkpoint can be named in advance.
    saved = tf.train.get_checkpoint_state(str(tmp_path / "a")).all_model_checkpoint_paths
    assert [int(path.rsplit("-", 1)[1]) for path in saved] == [10, 20, 30]
    before = _eval(training.Trainer(make_pretrainer(config), tf.distribute.get_strategy(),
                                    str(tmp_path / "untrained")), demo_data_dir, config)
    after = _eval(trainer, demo_data_dir, config)
    assert after["mlm_loss"] < before["mlm_loss"] - 1.0
    assert after["disc_loss"] < before["disc_loss"] - 0.1
    assert after["loss"] < before["loss"] * 0.8
    assert 0.1 < after["replaced_fraction"] < 0.16
    # tiny's output bias, logit(0.15), starts the untrained discriminator at the base rate's loss.
    tiny_bias = ElectraConfig.from_size("tiny").disc_output_bias
    assert tiny_bias == pytest.approx(np.log(0.15 / 0.85), abs=0.02)
    prior = _eval(training.Trainer(make_pretrainer(config.replace(disc_output_bias=tiny_bias)),
                                   tf.distribute.get_strategy(), str(tmp_path / "prior")), demo_data_dir, config)
    rate = prior["replaced_fraction"]
    base_rate_loss = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert abs(prior["disc_loss"] - base_rate_loss) < 0.02 < before["disc_loss"] - base_rate_loss - 0.2
    # Exact resume is tested end to end, bit for bit after SIGTERM and SIGKILL, in test_faults.py.


def test_mlm_objective_has_no_discriminator_and_trains(demo_data_dir, tmp_path):
    config = ElectraConfig.from_size("tiny", dict(OVERRIDES, objective="mlm", num_train_steps=10))
    model, trainer, logs = _train(config, demo_data_dir, tmp_path, 10)
    assert model.generator is None and model.discriminator_head is None
    assert "disc_loss" not in logs and np.isfinite(logs["mlm_loss"])
    # The full-size encoder is the masked LM: its hidden size feeds the head.
    assert model.generator_head._intermediate_dense.kernel.shape == (config.hidden_size, config.embedding_size)


def test_runs_under_mirrored_strategy_on_two_cpus(demo_data_dir, tmp_path, mirrored_strategy):
    strategy = mirrored_strategy
    config = ElectraConfig.from_size("tiny", dict(OVERRIDES, num_train_steps=5))
    model, trainer, logs = _train(config, demo_data_dir, tmp_path / "mirrored", 5, strategy=strategy)
    assert strategy.num_replicas_in_sync == 2 and int(model.optimizer.iterations.numpy()) == 5
    assert np.isfinite(logs["loss"]) and 0.1 < logs["replaced_fraction"] < 0.16
    # XLA, and a two-replica step equal to a one-device step, are tested in test_scale_out.py.


def test_one_base_step_with_a_small_batch():
    # No warmup: the authors' schedule gives a learning rate of 0 at step 0.
    config = ElectraConfig.from_size("base", {"train_batch_size": 2, "max_seq_length": 128, "num_warmup_steps": 0})
    model = make_pretrainer(config)
    assert model.discriminator.transformer_layers[0].intermediate_dim == 3072
    assert len(model.discriminator.transformer_layers) == 12 and model.generator.hidden_size == 256
    n_params = sum(int(np.prod(v.shape)) for v in model.discriminator.weights)
    assert 108e6 < n_params < 111e6  # BERT-Base without pooler: ~109M.
    ids = np.random.default_rng(0).integers(1000, 9000, (2, 128)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    before = model.discriminator.weights[-1].numpy().copy()
    logs = model.train_step({"input_ids": tf.constant(ids), "input_mask": tf.ones_like(ids),
                                          "segment_ids": tf.zeros_like(ids)})
    assert np.isfinite(float(logs["loss"])) and int(model.optimizer.iterations) == 1
    assert not np.array_equal(before, model.discriminator.weights[-1].numpy())
