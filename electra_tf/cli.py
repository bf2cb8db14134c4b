"""Flags shared by the top-level scripts: every config field, plus run settings."""

import os

from absl import flags
from absl import logging
import keras
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import config as config_lib
from electra_tf import distribution

MIXED_PRECISION = ("float32", "mixed_float16", "mixed_bfloat16")
_DEFINE = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
           bool: flags.DEFINE_boolean}


def define_config_flags():
    """Defines `--model_size`, `--hparams` and one flag per config field (unset = config value)."""
    flags.DEFINE_string("model_size", "tiny", f"Config in configs/: one of {config_lib.available_sizes()}.")
    flags.DEFINE_string("hparams", None, "JSON object (inline or a file path) overriding config fields.")
    for name, kind in config_lib.field_types().items():
        _DEFINE[kind](name, None, f"Override the config's {name}.")


def define_run_flags():
    flags.DEFINE_enum("strategy", "auto", distribution.STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (with --strategy=tpu or auto).")
    flags.DEFINE_integer("cpu_replicas", 1, "Split the CPU into N logical devices and run MirroredStrategy over "
                         "them (--strategy=mirrored or auto): try a multi-replica run without GPUs.")
    flags.DEFINE_boolean("jit_compile", None, "Compile the steps with XLA. Unset: on for GPU/TPU; on CPU on for "
                         "pre-training runs of at least 100 steps on one replica, where the faster steps repay the "
                         "compilation, else off.")
    flags.DEFINE_enum("mixed_precision", "float32", MIXED_PRECISION,
                      "Keras dtype policy; mixed_float16 adds dynamic loss scaling. Losses and logits stay float32.")
    flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism: a run, and a resumed run, "
                         "reproduce bit for bit (slower on GPUs).")
    flags.DEFINE_boolean("input_fingerprints", False, "Append each step's global-batch checksum of input_ids to "
                         "<model_dir>/input_fingerprints.tsv (step, checksum): to check that a resumed run, or one "
                         "on another replica count, reads the same examples at the same step.")
    flags.DEFINE_boolean("skip_nonfinite", False, "Skip steps whose gradient is NaN/Inf and count them, "
                         "instead of stopping the run at the first one.")


def set_determinism(flag_values):
    if flag_values.deterministic:
        tf.config.experimental.enable_op_determinism()


def get_strategy(flag_values):
    return distribution.get_strategy(flag_values.strategy, flag_values.tpu, flag_values.cpu_replicas)


def input_log(flag_values, model_dir):
    """Where `Trainer.train` logs input fingerprints (`--input_fingerprints`), or None."""
    return os.path.join(model_dir, "input_fingerprints.tsv") if flag_values.input_fingerprints else None


def set_precision(flag_values):
    """Sets the global Keras dtype policy; call before building a model."""
    keras.mixed_precision.set_global_policy(flag_values.mixed_precision)


def load_config(flag_values, task=None):
    """Config file (with its fine-tuning values for a `task`), then the shapes of `--init_checkpoint`'s model (its
    config.json), then `--hparams`, then flags: the most specific wins."""
    overrides = {}
    init_checkpoint = flag_values["init_checkpoint"].value if "init_checkpoint" in flag_values else None
    if init_checkpoint:
        overrides = checkpoint_interop.architecture_of(init_checkpoint)
        sized = config_lib.ElectraConfig.from_size(flag_values.model_size).to_dict()
        changed = {k: v for k, v in overrides.items() if sized[k] != v}
        if changed:
            logging.info("--init_checkpoint=%s: its config.json sets %s (not --model_size=%s's)", init_checkpoint,
                         changed, flag_values.model_size)
    overrides.update(config_lib.parse_hparams(flag_values.hparams))
    for name in config_lib.field_types():
        value = flag_values[name].value
        if value is not None:
            overrides[name] = value
    return config_lib.ElectraConfig.from_size(flag_values.model_size, overrides, task=task)


def jit_compile(flag_values, num_steps=None, replicas=1):
    """`--jit_compile`, or when unset `distribution.default_jit_compile` for a run of `num_steps` steps."""
    if flag_values.jit_compile is not None:
        return flag_values.jit_compile
    return distribution.default_jit_compile(num_steps, replicas)
