"""The authors' learning-rate schedule and AdamW with decoupled weight decay."""

import keras
from keras import ops
import tensorflow as tf

# Keras matches these against a variable's own name (the last part of its path):
# LayerNorm scales and offsets and every bias are not weight-decayed.
NO_DECAY = ("gamma", "beta", "bias")


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lr * (1 - step/total)^power * min(1, step/warmup)`.

    As in the authors' code, warmup is a factor multiplied onto the
    polynomial decay, not a phase that runs before it: the peak is slightly
    below `learning_rate`, and the rate reaches 0 at `total_steps`.

    Args:
      learning_rate: peak rate.
      total_steps: steps over which the rate decays to 0.
      warmup_steps: length of the linear warmup (0 for none).
      power: decay power (1.0 = linear).

    Example:
    ```python
    schedule = ElectraSchedule(5e-4, total_steps=1_000_000, warmup_steps=10_000)
    schedule(5000)  # about 2.5e-4
    ```
    """

    def __init__(self, learning_rate, total_steps, warmup_steps, power=1.0):
        self.learning_rate = learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.power = power

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step, self.total_steps) / self.total_steps
        rate = self.learning_rate * ops.power(1.0 - progress, self.power)
        if self.warmup_steps:
            rate *= ops.minimum(1.0, step / self.warmup_steps)
        return rate

    def get_config(self):
        return dict(learning_rate=self.learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, power=self.power)


def create_optimizer(config, learning_rate=None, total_steps=None, warmup_steps=None):
    """Keras AdamW configured as the authors' `AdamWeightDecayOptimizer`.

    Differences from the authors' optimizer, kept on purpose because Keras'
    AdamW is the maintained, distribution-aware implementation: Keras applies
    Adam's bias correction (the authors did not; with beta2=0.999 this mainly
    damps the first few thousand updates) and adds epsilon to the
    uncorrected second-moment root.

    Gradient clipping is not set here: `apply_gradients` clips the
    all-reduced gradient, whereas Keras would clip each replica's own.

    Args:
      config: an `ElectraConfig` (optimiser fields).
      learning_rate, total_steps, warmup_steps: override the config's
        pre-training values (fine-tuning passes its own).
    """
    schedule = ElectraSchedule(
        config.learning_rate if learning_rate is None else learning_rate,
        config.num_train_steps if total_steps is None else total_steps,
        config.num_warmup_steps if warmup_steps is None else warmup_steps,
        config.lr_decay_power)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay_rate, beta_1=config.adam_beta_1,
        beta_2=config.adam_beta_2, epsilon=config.adam_epsilon)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer


def apply_gradients(optimizer, grads, variables, clip_norm):
    """Clips the global-batch gradient by its global norm and applies it.

    Keras clips before it sums the replicas' gradients, so N replicas would
    clip N partial gradients (the authors' TPU code did the same). Here the
    gradient is summed first, so a step on N replicas equals a step on one
    device with the same global batch.

    Returns:
      The global gradient norm before clipping.
    """
    grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    replica = tf.distribute.get_replica_context()
    num_replicas = replica.num_replicas_in_sync if replica else 1
    if num_replicas > 1:
        grads = replica.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, norm = tf.clip_by_global_norm(grads, clip_norm)
    if num_replicas > 1:
        # Every replica now holds the global gradient; the optimizer sums the
        # replicas' copies once more, so hand it each replica's share.
        grads = [g / num_replicas for g in grads]
    optimizer.apply(grads, variables)
    return norm
