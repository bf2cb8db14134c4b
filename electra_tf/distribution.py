"""Choosing a `tf.distribute` strategy from flags."""

import json
import os

from absl import logging
import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


def get_strategy(name="auto", tpu=None):
    """Returns the strategy named by `--strategy`.

    `auto` picks TPUStrategy when `tpu` is given, MirroredStrategy when more
    than one GPU is visible, else the default strategy. `multi_worker` reads
    the cluster from the `TF_CONFIG` environment variable.

    Args:
      name: one of `STRATEGIES`.
      tpu: TPU name or grpc address, for `TPUClusterResolver`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {STRATEGIES}")
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "tpu" if tpu else ("mirrored" if len(gpus) > 1 else "default")
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable")
        json.loads(os.environ["TF_CONFIG"])  # A clear error for malformed JSON.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this worker writes checkpoints and summaries (always true off multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def describe(strategy, global_batch_size, accumulation_steps=1):
    """Logs the strategy and batch split; returns the per-replica batch."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % (replicas * accumulation_steps):
        raise ValueError(f"the global batch {global_batch_size} does not divide over {replicas} replica(s) "
                         f"x {accumulation_steps} accumulation step(s)")
    logging.info("strategy %s: %d replica(s), global batch %d, per-replica batch %d, %d micro-batch(es) of %d",
                 type(strategy).__name__, replicas, global_batch_size, global_batch_size // replicas,
                 accumulation_steps, global_batch_size // replicas // accumulation_steps)
    return global_batch_size // replicas


def default_jit_compile():
    """XLA by default on accelerators only: on this project's CPUs it measured slower."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
