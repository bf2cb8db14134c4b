"""Runs of run_pretraining.py that are preempted, killed or spread over two worker processes."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from conftest import REPO

STEPS = 24
FLAGS = ["--model_size=tiny", "--num_hidden_layers=1", "--max_seq_length=64", "--train_batch_size=8",
         "--steps_per_loop=2", "--save_checkpoints_steps=2", "--keep_checkpoint_max=3", "--do_eval=false",
         "--deterministic", "--input_fingerprints"]
MIRRORED = ["--strategy=mirrored", "--cpu_replicas=2"]


def _start(data_dir, model_dir, *extra, env=None, log=None):
    log = open(log or os.path.join(os.path.dirname(model_dir), os.path.basename(model_dir) + ".log"), "a")
    command = [sys.executable, os.path.join(REPO, "run_pretraining.py"), f"--data_dir={data_dir}",
               f"--model_dir={model_dir}", f"--num_train_steps={STEPS}", *FLAGS, *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)


def _wait_for_checkpoint(processes, model_dir, at_least, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(model_dir)
        if latest and int(latest.rsplit("-", 1)[1]) >= at_least:
            return int(latest.rsplit("-", 1)[1])
        for process in processes:
            assert process.poll() is None, f"run ended early with {process.returncode}"
        time.sleep(0.05)
    for process in processes:
        process.kill()
    raise TimeoutError(f"no checkpoint >= {at_least} in {model_dir}")


def _weights(model_dir):
    """Every numeric tensor of the latest checkpoint: weights, optimizer slots, seed states, step."""
    reader = tf.train.load_checkpoint(model_dir)
    names = [n for n, dtype in reader.get_variable_to_dtype_map().items()
             if dtype not in (tf.variant, tf.string) and not n.startswith("save_counter")]
    assert len(names) > 50
    return {n: reader.get_tensor(n) for n in names}


def _assert_same_weights(expected_dir, actual_dir):
    expected, actual = _weights(expected_dir), _weights(actual_dir)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(expected[name], actual[name], err_msg=name)


def _fingerprints(model_dir):
    """{step: checksum of its global batch's input ids}; a step logged twice (redone after a kill) must agree."""
    steps = {}
    with open(os.path.join(model_dir, "input_fingerprints.tsv")) as f:
        for line in f:
            step, value = map(int, line.split())
            assert steps.setdefault(step, value) == value, f"step {step} read other examples when redone"
    return steps


def _finish(*processes, timeout=300):
    try:
        return [p.wait(timeout) for p in processes]
    finally:
        for p in processes:
            p.kill()


def _kill(*processes):
    for p in processes:
        p.send_signal(signal.SIGKILL)  # A crash, possibly in the middle of a save.
    for p in processes:
        p.wait()


def test_mirrored_run_killed_resumes_bit_identically_and_on_one_replica_at_the_same_example(demo_data_dir, tmp_path):
    straight, broken = str(tmp_path / "straight"), str(tmp_path / "broken")
    uninterrupted, first = _start(demo_data_dir, straight, *MIRRORED), _start(demo_data_dir, broken, *MIRRORED)
    _wait_for_checkpoint([first], broken, 6)
    _kill(first)
    killed_at = int(tf.train.latest_checkpoint(broken).rsplit("-", 1)[1])
    assert killed_at < STEPS
    # The same checkpoint, resumed on one replica: the global batch is the same, so must the examples be.
    shutil.copytree(broken, broken + "_one_replica")
    one_replica = _start(demo_data_dir, broken + "_one_replica", "--strategy=default")
    resumed = _start(demo_data_dir, broken, *MIRRORED)
    _wait_for_checkpoint([one_replica], broken + "_one_replica", killed_at + 4)
    one_replica.send_signal(signal.SIGTERM)  # Preemption: finish the loop, save and exit cleanly.
    assert _finish(uninterrupted, resumed, one_replica) == [0, 0, 0]

    expected = _fingerprints(straight)
    assert sorted(expected) == list(range(STEPS)) and len(set(expected.values())) == STEPS
    assert _fingerprints(broken) == expected
    _assert_same_weights(straight, broken)
    with open(broken + "_one_replica.log") as f:
        log = f.read()
    assert "1 replica(s), global batch 8, per-replica batch 8" in log and "SIGTERM: saved step" in log
    stopped_at = int(tf.train.latest_checkpoint(broken + "_one_replica").rsplit("-", 1)[1])
    after_resume = {s: v for s, v in _fingerprints(broken + "_one_replica").items() if s >= killed_at}
    assert after_resume == {s: expected[s] for s in range(killed_at, stopped_at)}


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


def _workers(data_dir, model_dir, ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [_start(data_dir, model_dir, "--strategy=multi_worker", log=f"{model_dir}.{index}.log", env={
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})})
        for index in range(2)]


def test_two_workers_killed_resume_bit_identically_and_only_the_chief_writes(demo_data_dir, tmp_path):
    straight, broken = str(tmp_path / "straight"), str(tmp_path / "broken")
    ports = _free_ports(4)
    uninterrupted, workers = _workers(demo_data_dir, straight, ports[:2]), _workers(demo_data_dir, broken, ports[2:])
    _wait_for_checkpoint(workers, broken, 6)
    _kill(*workers)  # A lost job: every worker goes down.
    assert int(tf.train.latest_checkpoint(broken).rsplit("-", 1)[1]) < STEPS
    codes = _finish(*uninterrupted, *_workers(demo_data_dir, broken, _free_ports(2)), timeout=400)
    log = open(straight + ".0.log").read()
    assert codes == [0, 0, 0, 0], log[-2000:] + open(broken + ".0.log").read()[-2000:]
    assert "2 replica(s), global batch 8, per-replica batch 4" in log
    _assert_same_weights(straight, os.path.join(straight, "worker_tmp_1"))
    assert os.path.exists(os.path.join(straight, "train")) and os.path.exists(
        os.path.join(straight, "pretraining_summary.json"))
    assert not os.path.exists(os.path.join(straight, "worker_tmp_1", "train"))
    assert not os.path.exists(os.path.join(straight, "worker_tmp_1", "input_fingerprints.tsv"))
    assert _fingerprints(broken) == _fingerprints(straight)
    assert sorted(_fingerprints(straight)) == list(range(STEPS))
    _assert_same_weights(straight, broken)
