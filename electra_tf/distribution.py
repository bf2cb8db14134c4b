"""Choosing a `tf.distribute` strategy from flags."""

import json
import os

from absl import logging
import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


def get_strategy(name="auto", tpu=None, cpu_replicas=1):
    """Returns the strategy named by `--strategy`.

    `auto` picks TPUStrategy when `tpu` is given, MirroredStrategy when more
    than one GPU is visible or `cpu_replicas` > 1, else the default strategy.
    `multi_worker` reads the cluster from the `TF_CONFIG` environment variable.
    Call it before any other TensorFlow work (devices and collectives are
    configured once, when TF's runtime starts).

    Args:
      name: one of `STRATEGIES`.
      tpu: TPU name or grpc address, for `TPUClusterResolver`.
      cpu_replicas: split the CPU into this many logical devices and mirror
        over them: a multi-replica run (and its tests) without GPUs.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {STRATEGIES}")
    if cpu_replicas < 1:
        raise ValueError(f"--cpu_replicas={cpu_replicas}: must be at least 1")
    if cpu_replicas > 1:
        if name not in ("auto", "mirrored"):
            raise ValueError(f"--cpu_replicas={cpu_replicas} runs MirroredStrategy over logical CPUs: use it with "
                             f"--strategy=mirrored or auto, not {name}")
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)])
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_replicas)])
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


# On CPU an XLA-compiled pre-training step is faster (32 x 128: tiny 442-451 against 470-505 ms, small 2.83
# against 3.36 s) but its first call costs more (tiny +7 s, small +12 s): it repays that within ~25-200 steps
# (a 300-step tiny run: 125 s with XLA, 141 s without). With evaluation's compilation and a margin, XLA is the
# default from this many steps. BENCHMARKS.md, "XLA on CPU".
XLA_CPU_MIN_STEPS = 100


def default_jit_compile(num_steps=None, replicas=1):
    """Whether to XLA-compile the steps when `--jit_compile` is unset.

    Always on GPUs and TPUs. On CPU, for runs of at least `XLA_CPU_MIN_STEPS`
    steps on one replica (XLA cannot run one step over several logical CPU
    devices); shorter runs would not recover the compilation.

    Args:
      num_steps: the steps the run will take; None (unknown) keeps XLA off on CPU.
      replicas: the strategy's replicas in sync.
    """
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return True
    return replicas == 1 and num_steps is not None and num_steps >= XLA_CPU_MIN_STEPS
