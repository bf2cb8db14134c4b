"""The authors' learning-rate schedule, Adam with decoupled weight decay, and gradient application."""

import re

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


@keras.saving.register_keras_serializable(package="electra_tf")
class AdamWeightDecay(keras.optimizers.Adam):
    """Adam with decoupled weight decay and per-variable learning-rate multipliers.

    With `bias_correction=False` this is the authors' `AdamWeightDecayOptimizer`,
    the rule the released checkpoints were trained with:

        m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
        w -= lr * mult * (m / (sqrt(v) + eps) + weight_decay_rate * w)

    With `bias_correction=True` the Adam step is Keras' (m and v corrected
    by `1 - b^t`), with the same decoupled decay. Without correction the early
    updates are larger (about 6.5x at step 10, 3.2x at step 100 with
    b2 = 0.999), which matters for short runs. Either way a variable's
    multiplier (layer-wise decay) scales its weight decay too, which Keras'
    AdamW cannot do.

    Args:
      weight_decay_rate: decoupled weight decay (not on `NO_DECAY` names).
      lr_multipliers: optional (variable, multiplier) pairs; others get 1.0.
      bias_correction: correct the moments as Keras' Adam does (False: the authors' rule).
      **kwargs: `keras.optimizers.Adam` arguments.

    Example:
    ```python
    optimizer = AdamWeightDecay(0.01, [(embedding_table, 0.5)], bias_correction=False,
                                learning_rate=1e-4, epsilon=1e-6)
    ```
    """

    def __init__(self, weight_decay_rate=0.0, lr_multipliers=None, bias_correction=True, **kwargs):
        super().__init__(**kwargs)
        if self.amsgrad and not bias_correction:
            raise ValueError("AdamWeightDecay: amsgrad needs bias_correction=True")
        self.weight_decay_rate = weight_decay_rate
        self.bias_correction = bias_correction
        self._multipliers = {self._var_key(v): float(m) for v, m in (lr_multipliers or ())}
        self.exclude_from_weight_decay(var_names=list(NO_DECAY))

    def lr_multiplier(self, variable):
        return self._multipliers.get(self._var_key(variable), 1.0)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype) * self.lr_multiplier(variable)
        decay = self.weight_decay_rate and self._use_weight_decay(variable)
        if self.bias_correction:
            if decay:
                variable.assign_sub(variable * ops.cast(self.weight_decay_rate, variable.dtype) * learning_rate)
            super().update_step(gradient, variable, learning_rate)
            return
        # The authors' rule reuses Adam's slots, so checkpoints look the same either way.
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, m * self.beta_1 + gradient * (1.0 - self.beta_1))
        self.assign(v, v * self.beta_2 + ops.square(gradient) * (1.0 - self.beta_2))
        update = m / (ops.sqrt(v) + self.epsilon)
        if decay:
            update += ops.cast(self.weight_decay_rate, variable.dtype) * variable
        self.assign_sub(variable, learning_rate * update)

    def get_config(self):
        # Multipliers are keyed by live variables and are not serialised.
        return {**super().get_config(), "weight_decay_rate": self.weight_decay_rate,
                "bias_correction": self.bias_correction}


def create_optimizer(config, total_steps=None, warmup_steps=None, lr_multipliers=None):
    """Adam with decoupled weight decay, as the config says (`adam_bias_correction`).

    `adam_bias_correction=false` is the authors' `AdamWeightDecayOptimizer`;
    true is Keras' bias-corrected Adam with the same decoupled decay.

    Gradient clipping is not set here: `apply_gradients` clips the
    all-reduced gradient, whereas Keras would clip each replica's own.

    Args:
      config: an `ElectraConfig` (optimiser fields).
      total_steps, warmup_steps: override the config's `num_train_steps` and
        `num_warmup_steps` (fine-tuning counts them from epochs).
      lr_multipliers: (variable, multiplier) pairs, for layer-wise learning-rate decay.
    """
    schedule = ElectraSchedule(
        config.learning_rate,
        config.num_train_steps if total_steps is None else total_steps,
        config.num_warmup_steps if warmup_steps is None else warmup_steps,
        config.lr_decay_power)
    return AdamWeightDecay(
        config.weight_decay_rate, lr_multipliers, bias_correction=config.adam_bias_correction,
        learning_rate=schedule, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2, epsilon=config.adam_epsilon)


def layerwise_lr_multipliers(names, num_layers, decay, authors_off_by_one=False):
    """Layer-wise learning-rate decay: `decay ** (top - depth)` for each variable.

    Depth 0 is the embedding block (and `embeddings_project`), layer `i` is
    depth `i + 1`, and the task head (`task_specific/`) is the top. The
    correct top is `num_layers + 1`, so the last layer gets `decay ** 1`; the
    authors' code put the head at `num_layers + 2`, giving every layer one
    extra factor of `decay` (`authors_off_by_one=True` reproduces it).

    Args:
      names: {authors' name: variable} of the encoder and the task head.
      num_layers: transformer layers of the encoder.
      decay: the per-layer factor (0.8 for small and base, 0.9 for large).
      authors_off_by_one: use the released code's depth for the head.

    Returns:
      {authors' name: multiplier}.

    Raises:
      ValueError naming a variable that belongs to no depth.
    """
    top = num_layers + (2 if authors_off_by_one else 1)
    multipliers = {}
    for name in names:
        layer = re.search(r"/encoder/layer_(\d+)/", name)
        if layer:
            depth = int(layer.group(1)) + 1
        elif "/embeddings/" in name or "/embeddings_project/" in name:
            depth = 0
        elif name.startswith("task_specific/"):
            depth = top
        else:
            raise ValueError(f"layer-wise learning rates: no depth for {name!r}")
        multipliers[name] = decay ** (top - depth)
    return multipliers


@keras.saving.register_keras_serializable(package="electra_tf")
class UpdateGuard(keras.layers.Layer):
    """Keeps non-finite gradients out of the weights, and float16's dynamic loss scale.

    A step whose gradient is not finite is skipped: weights and optimizer
    state stay as they were. It is counted in `nonfinite_steps`, with the
    step number in `last_nonfinite_step`; the training loop decides whether
    that ends the run. Under float16 a non-finite gradient from a finite loss
    is a loss-scale overflow, not a fault: the scale halves and the step is
    skipped uncounted; after `growth_interval` finite steps in a row the
    scale doubles (the policy of Keras' `LossScaleOptimizer`, which cannot be
    used here because it would unscale after our global-norm clipping).
    Its state is in weights, so checkpoints carry it.

    Args:
      dynamic_loss_scale: scale the loss (for float16 compute).
      initial_scale: the first loss scale.
      growth_interval: finite steps before the scale doubles.

    Example:
    ```python
    guard = UpdateGuard(dynamic_loss_scale=True)
    grads = tape.gradient(guard.scale(loss), variables)
    apply_gradients(optimizer, guard.unscale(grads), variables, clip_norm=1.0, guard=guard, loss=loss)
    ```
    """

    def __init__(self, dynamic_loss_scale=False, initial_scale=2.0 ** 15, growth_interval=2000, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.dynamic_loss_scale = dynamic_loss_scale
        self.initial_scale = initial_scale
        self.growth_interval = growth_interval

        def state(name, value, dtype):
            return self.add_weight(name=name, shape=(), dtype=dtype, trainable=False, aggregation="only_first_replica",
                                   initializer=keras.initializers.Constant(value))

        self.loss_scale = state("loss_scale", initial_scale if dynamic_loss_scale else 1.0, "float32")
        self.good_steps = state("good_steps", 0, "int64")
        self.nonfinite_steps = state("nonfinite_steps", 0, "int64")
        self.last_nonfinite_step = state("last_nonfinite_step", -1, "int64")

    @classmethod
    def for_global_policy(cls, **kwargs):
        """A guard with dynamic loss scaling exactly when Keras' global policy computes in float16."""
        return cls(dynamic_loss_scale=keras.mixed_precision.dtype_policy().compute_dtype == "float16", **kwargs)

    def scale(self, loss):
        return loss * self.loss_scale if self.dynamic_loss_scale else loss

    def unscale(self, grads):
        if not self.dynamic_loss_scale:
            return grads
        return [None if g is None else tf.convert_to_tensor(g) / self.loss_scale for g in grads]

    def update(self, grads_finite, loss_finite, step):
        """Records one step's outcome (its update is applied only if `grads_finite`)."""
        overflow = tf.logical_and(loss_finite, tf.logical_not(grads_finite)) if self.dynamic_loss_scale \
            else tf.constant(False)
        fault = tf.logical_not(grads_finite) & tf.logical_not(overflow)
        good = tf.where(grads_finite, self.good_steps + 1, 0)
        grow = self.dynamic_loss_scale & (good >= self.growth_interval)
        factor = tf.where(overflow, 0.5, tf.where(grow, 2.0, 1.0))
        self.loss_scale.assign(self.loss_scale * factor)
        self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))
        self.nonfinite_steps.assign_add(tf.cast(fault, tf.int64))
        self.last_nonfinite_step.assign(tf.where(fault, tf.cast(step, tf.int64), self.last_nonfinite_step))

    def get_config(self):
        config = super().get_config()
        config.update(dynamic_loss_scale=self.dynamic_loss_scale, initial_scale=self.initial_scale,
                      growth_interval=self.growth_interval)
        return config


def apply_gradients(optimizer, grads, variables, clip_norm, guard=None, loss=None):
    """Clips the global-batch gradient by its global norm and applies it if it is finite.

    Keras clips before it sums the replicas' gradients, so N replicas would
    clip N partial gradients (the authors' TPU code did the same). Here the
    gradient is summed first, so a step on N replicas equals a step on one
    device with the same global batch.

    Args:
      optimizer: a built Keras optimizer.
      grads, variables: this replica's (unscaled) gradients and the variables.
      clip_norm: global-norm clipping threshold.
      guard: optional `UpdateGuard`; without one, non-finite steps are skipped silently.
      loss: this replica's share of the loss, to tell float16 overflow from divergence.

    Returns:
      The global gradient norm before clipping.
    """
    grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    replica = tf.distribute.get_replica_context()
    num_replicas = replica.num_replicas_in_sync if replica else 1
    if num_replicas > 1:
        grads = replica.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if loss is not None:
            loss = replica.all_reduce(tf.distribute.ReduceOp.SUM, loss)
    norm = tf.linalg.global_norm(grads)
    finite = tf.math.is_finite(norm)
    if guard is not None:
        loss_finite = tf.math.is_finite(loss) if loss is not None else finite
        guard.update(finite, loss_finite, optimizer.iterations)
    # With a non-finite norm, clipping would turn every gradient into NaN; the
    # update is skipped then, so clip by a finite stand-in.
    grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=tf.where(finite, norm, 1.0))
    if num_replicas > 1:
        # Every replica now holds the global gradient; the optimizer sums the
        # replicas' copies once more, so hand it each replica's share.
        grads = [g / num_replicas for g in grads]
    # A skipped step still counts (its batch is consumed, and the schedule and
    # the step's random seed move on), so a run of bad steps cannot loop forever.
    _apply_if(finite, lambda g: optimizer.apply(g, variables), lambda: optimizer.iterations.assign_add(1), grads)
    return norm


def _apply_if(condition, apply_fn, else_fn, grads):
    """Runs `apply_fn(grads)` (which may call `merge_call`) if `condition` holds, else `else_fn()`.

    `condition` is the same on every replica (it comes from all-reduced
    values). A `cond` whose branch calls `merge_call` must run in the
    cross-replica context unless the strategy can do without merge calls, as
    in Keras' `LossScaleOptimizer`.
    """
    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(condition, lambda: _no_output(lambda: apply_fn(grads)), lambda: _no_output(else_fn))
        return

    def cross_replica(distribution, condition, grads):
        # Each replica applies its own gradients (passed through `args`, not a closure).
        condition = distribution.experimental_local_results(condition)[0]
        tf.cond(condition,
                lambda: _no_output(lambda: distribution.extended.call_for_each_replica(apply_fn, args=(grads,))),
                lambda: _no_output(else_fn))

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(condition, grads))


def _no_output(fn):
    fn()
    return tf.no_op()
