"""Shared fixtures. Two logical CPU devices are configured before TF starts, for strategy tests."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

from electra_tf import pretraining_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIAL_IDS = {"cls": 101, "sep": 102, "mask": 103}


@pytest.fixture(scope="session")
def vocab_file():
    return pretraining_data.demo_vocab_file()


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """The real demo corpus (Wikipedia summaries) built once, at length 64 to keep tests fast."""
    data_dir = str(tmp_path_factory.mktemp("demo_data"))
    pretraining_data.prepare_demo_data(data_dir, max_seq_length=64, num_out_files=4)
    return data_dir


def run_script(script, *args, timeout=600):
    """Runs a top-level script in a fresh Python; returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def make_pretrainer(config, strategy=None):
    """A built and compiled `ElectraPretrainer` with seeded initial weights."""
    import keras
    from electra_tf import optimization
    from electra_tf.pretrainer import ElectraPretrainer

    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = ElectraPretrainer(config, SPECIAL_IDS)
        model.build_variables()
        model.compile(optimizer=optimization.create_optimizer(config))
        model.optimizer.build(model.trainable_variables)
    return model


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Each strategy instance numbers its collective ops from the same start, and
    TF keys collectives process-wide: a second instance in the same process
    can collide with the first ("Shape mismatch in the collective instance").
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
