"""Runs of run_pretraining.py that are preempted, killed or spread over two worker processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from conftest import REPO

STEPS = 40
FLAGS = ["--model_size=tiny", "--num_hidden_layers=1", "--max_seq_length=64", "--train_batch_size=8",
         "--steps_per_loop=2", "--save_checkpoints_steps=2", "--keep_checkpoint_max=3", "--do_eval=false",
         "--deterministic"]


def _start(data_dir, model_dir, *extra, env=None):
    log = open(os.path.join(os.path.dirname(model_dir), os.path.basename(model_dir) + ".log"), "a")
    command = [sys.executable, os.path.join(REPO, "run_pretraining.py"), f"--data_dir={data_dir}",
               f"--model_dir={model_dir}", f"--num_train_steps={STEPS}", *FLAGS, *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)


def _wait_for_checkpoint(process, model_dir, at_least, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(model_dir)
        if latest and int(latest.rsplit("-", 1)[1]) >= at_least:
            return int(latest.rsplit("-", 1)[1])
        assert process.poll() is None, f"run ended early with {process.returncode}"
        time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"no checkpoint >= {at_least} in {model_dir}")


def _weights(model_dir):
    """Every numeric tensor of the latest checkpoint: weights, optimizer slots, seed states, step."""
    reader = tf.train.load_checkpoint(model_dir)
    names = [n for n, dtype in reader.get_variable_to_dtype_map().items()
             if dtype not in (tf.variant, tf.string) and not n.startswith("save_counter")]
    assert len(names) > 50
    return {n: reader.get_tensor(n) for n in names}


def _finish(process, timeout=300):
    try:
        return process.wait(timeout)
    finally:
        process.kill()


def test_sigterm_then_sigkill_then_resume_matches_an_uninterrupted_run(demo_data_dir, tmp_path):
    straight = str(tmp_path / "straight")
    assert _finish(_start(demo_data_dir, straight)) == 0

    broken = str(tmp_path / "broken")
    first = _start(demo_data_dir, broken)
    _wait_for_checkpoint(first, broken, 6)
    first.send_signal(signal.SIGTERM)  # Preemption: save and exit cleanly.
    assert _finish(first) == 0
    with open(broken + ".log") as f:
        assert "SIGTERM: saved step" in f.read()
    stopped_at = int(tf.train.latest_checkpoint(broken).rsplit("-", 1)[1])
    assert stopped_at < STEPS

    second = _start(demo_data_dir, broken)
    _wait_for_checkpoint(second, broken, stopped_at + 4)
    second.send_signal(signal.SIGKILL)  # A crash, possibly in the middle of a save.
    second.wait()
    assert int(tf.train.latest_checkpoint(broken).rsplit("-", 1)[1]) < STEPS

    assert _finish(_start(demo_data_dir, broken)) == 0
    expected, resumed = _weights(straight), _weights(broken)
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(expected[name], resumed[name], err_msg=name)


def test_a_partly_written_checkpoint_is_never_the_latest(tmp_path):
    # Savers write the data and index first and update the `checkpoint` state
    # file last, by an atomic rename: a kill mid-save leaves the previous one.
    variable = tf.Variable(1.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(tmp_path), max_to_keep=2)
    good = manager.save(checkpoint_number=1)
    with open(tmp_path / "ckpt-2.index", "wb") as f:
        f.write(b"\x00truncated")
    assert tf.train.latest_checkpoint(str(tmp_path)) == good
    variable.assign(5.0)
    tf.train.Checkpoint(v=variable).restore(tf.train.latest_checkpoint(str(tmp_path))).assert_consumed()
    assert float(variable.numpy()) == 1.0


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_to_identical_weights_and_only_the_chief_writes(demo_data_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    model_dir = str(tmp_path / "multi")
    workers = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(_start(demo_data_dir, model_dir, "--strategy=multi_worker", "--num_train_steps=4",
                                  env={"TF_CONFIG": tf_config}))
        codes = [w.wait(timeout=400) for w in workers]
    finally:
        for w in workers:
            w.kill()
    log = open(model_dir + ".log").read()
    assert codes == [0, 0], log[-3000:]
    assert "2 replica(s), global batch 8, per-replica batch 4" in log
    chief, other = _weights(model_dir), _weights(os.path.join(model_dir, "worker_tmp_1"))
    assert int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1]) == 4
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert os.path.exists(os.path.join(model_dir, "train")) and os.path.exists(
        os.path.join(model_dir, "pretraining_summary.json"))
    assert not os.path.exists(os.path.join(model_dir, "worker_tmp_1", "train"))
