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


_CASES_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
script, cases = sys.argv[2], json.loads(sys.argv[3])
module = __import__(script[:-3])
from absl import flags
errors = []
for args in cases:
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([script, *args])
        module.main([script])
        errors.append("")
    except BaseException as e:
        errors.append(f"{type(e).__name__}: {e}")
print(json.dumps(errors))
"""


def script_errors(script, cases, timeout=600):
    """Each case's error from a top-level script ('' if none), all cases in ONE fresh Python.

    Every case is parsed by absl and run through the script's `main`, as
    `app.run` would; sharing one process pays TensorFlow's start-up once.
    """
    import json

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-c", _CASES_DRIVER, REPO, script, json.dumps(cases)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


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
