"""Fine-tuning ELECTRA's discriminator: the task model, its step, its inputs and its initial weights.

The model is the authors': the discriminator encoder, its [CLS] hidden state,
dropout, and one dense layer under `task_specific/<task>/` (a single output
trained with MSE for regression). Training reuses the pre-training machinery:
`optimization.apply_gradients` (global-batch clipping, non-finite guard) and
`training.Trainer` (loops, checkpoints, resume, TensorBoard).
"""

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import modeling
from electra_tf import optimization


class ElectraClassifier(modeling.FeaturesModel):
    """A sentence(-pair) classifier or regressor on ELECTRA's discriminator.

    Args:
      config: an `ElectraConfig` (encoder sizes, dropout, clip_norm).
      num_outputs: number of classes, or 1 for regression.
      task_name: names the head's variables (`task_specific/<task_name>/dense/...`).
      regression: one output trained with mean squared error.

    Call args:
      features: dict of int32 `input_ids`, `input_mask`, `segment_ids` [batch, length].

    Returns:
      float32 logits [batch, num_outputs] (classification) or predictions [batch] (regression).

    Example:
    ```python
    model = ElectraClassifier(config, num_outputs=2, task_name="sst")
    model.build_variables()
    load_pretrained(model, "runs/pretrain_small_electra")
    logits = model({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    ```
    """

    def __init__(self, config, num_outputs, task_name, regression=False, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.task_name = task_name
        self.regression = regression
        self.embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.encoder = modeling.ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.dropout = keras.layers.Dropout(config.dropout_prob)
        self.head = keras.layers.Dense(num_outputs, kernel_initializer=modeling.initializer(config),
                                       dtype="float32", name="task_head")
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.accuracy_metric = None if regression else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.guard = optimization.UpdateGuard.for_global_policy(name="update_guard")

    @property
    def metrics(self):
        return [m for m in (self.loss_metric, self.accuracy_metric) if m is not None]

    def call(self, features, training=None):
        hidden = self.encoder(features["input_ids"], features["segment_ids"], features["input_mask"],
                              training=training)
        logits = self.head(self.dropout(hidden[:, 0], training=training))
        return logits[:, 0] if self.regression else logits

    def variable_names(self):
        """{authors' name: variable}: the encoder as `electra/...`, the head as the authors' fine-tuning code."""
        names = checkpoint_interop.encoder_names(self.encoder, "electra")
        names[f"task_specific/{self.task_name}/dense/kernel"] = self.head.kernel
        names[f"task_specific/{self.task_name}/dense/bias"] = self.head.bias
        return names

    def task_loss(self, labels, outputs):
        """This replica's share of the mean loss over the global batch."""
        replica = tf.distribute.get_replica_context()
        replicas = replica.num_replicas_in_sync if replica else 1
        if self.regression:
            per_example = tf.square(outputs - tf.cast(labels, tf.float32))
        else:
            per_example = keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=True)
        return tf.reduce_sum(per_example) / tf.cast(tf.shape(per_example)[0] * replicas, tf.float32), replicas

    def train_step(self, data):
        with tf.GradientTape() as tape:
            outputs = self(data, training=True)
            loss, replicas = self.task_loss(data["label_ids"], outputs)
            scaled = self.guard.scale(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        optimization.apply_gradients(self.optimizer, self.guard.unscale(grads), self.trainable_variables,
                                     self.config.clip_norm, guard=self.guard, loss=loss)
        self.loss_metric.update_state(loss * replicas)
        if self.accuracy_metric is not None:
            self.accuracy_metric.update_state(data["label_ids"], outputs)
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, data):
        return self(data, training=False)


def layerwise_multipliers(model, authors_off_by_one=False):
    """(variable, learning-rate multiplier) pairs from the config's `layerwise_lr_decay`."""
    names = model.variable_names()
    by_name = optimization.layerwise_lr_multipliers(
        names, model.config.num_hidden_layers, model.config.layerwise_lr_decay, authors_off_by_one)
    return [(names[name], multiplier) for name, multiplier in by_name.items()]


# Pre-training parts a fine-tuning model has no use for.
_PRETRAINING_ONLY = ("generator/", "generator_predictions/", "discriminator_predictions/", "task_specific/")


def load_pretrained(model, path):
    """Initialises the encoder from a checkpoint of any `checkpoint_interop` format.

    The generator and pre-training heads (or another task's head) in the
    checkpoint are left out and counted; anything else the encoder does not
    use, a missing variable or a shape that does not fit the config is an
    error naming it.

    Returns:
      The detected format.
    """
    try:
        source, left_out = checkpoint_interop.load_into(
            checkpoint_interop.encoder_names(model.encoder, "electra"), path, ignore=_PRETRAINING_ONLY)
    except ValueError as e:
        raise ValueError(f"--init_checkpoint={path} does not fit --model_size/--hparams: {e}") from e
    logging.info("initialised the encoder from %s (%s); left out %d pre-training variables", path, source, left_out)
    return source


# --- Inputs ---

FEATURES = ("input_ids", "input_mask", "segment_ids", "label_ids")


def train_dataset(features, batch_size, seed, input_context=None):
    """Shuffled, repeated training batches; epochs are permutations of the examples.

    Only indices are shuffled (and checkpointed with the iterator); the
    feature arrays are gathered per batch.
    """
    arrays = {k: tf.constant(features[k]) for k in FEATURES}
    n = len(features["input_ids"])
    indices = tf.data.Dataset.range(n)
    if input_context and input_context.num_input_pipelines > 1:
        indices = indices.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    batches = indices.batch(batch_size, drop_remainder=True)
    return batches.map(lambda i: {k: tf.gather(v, i) for k, v in arrays.items()}).prefetch(tf.data.AUTOTUNE)


def eval_dataset(features, batch_size):
    """Every example once, in order; the last batch is padded (static shapes for XLA/TPU).

    Returns:
      (dataset, number of real examples): predictions beyond that number are padding.
    """
    n = len(features["input_ids"])
    padded = -n % batch_size
    arrays = {k: np.concatenate([features[k], np.zeros((padded,) + features[k].shape[1:], features[k].dtype)])
              for k in FEATURES}
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=True), n
