"""Fine-tuning ELECTRA's discriminator: the task models, their step, their inputs and initial weights.

The models are the authors': the discriminator encoder with a classifier
([CLS] -> dropout -> dense, MSE for regression), a SQuAD span head or a token
tagger (dense over every position), under
`task_specific/<task>/`. Training reuses the pre-training machinery:
`optimization.apply_gradients` (global-batch clipping, non-finite guard) and
`training.Trainer` (loops, checkpoints, resume, TensorBoard).
"""

import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import electric
from electra_tf import hf_heads
from electra_tf import input_order
from electra_tf import modeling
from electra_tf import optimization
from electra_tf import tasks


class FinetuningModel(modeling.FeaturesModel):
    """The discriminator encoder with a task head, and the training step all tasks share.

    Subclasses build their head, compute outputs in `call`, and define
    `per_example_loss` and `head_variables`.

    Args:
      config: an `ElectraConfig` (encoder sizes, dropout, clip_norm).
      task_name: names the head's variables (`task_specific/<task_name>/...`).
    """

    def __init__(self, config, task_name, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.task_name = task_name
        self.embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.encoder = modeling.ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.guard = optimization.UpdateGuard.for_global_policy(name="update_guard")

    @property
    def metrics(self):
        return [self.loss_metric]

    def encode(self, features, training):
        return self.encoder(features["input_ids"], features["segment_ids"], features["input_mask"],
                            training=training)

    def variable_names(self):
        """{authors' name: variable}: the encoder as `electra/...`, the head under `task_specific/<task>/`."""
        names = checkpoint_interop.encoder_names(self.encoder, "electra")
        names.update({f"task_specific/{self.task_name}/{name}": v for name, v in self.head_variables().items()})
        return names

    def train_step(self, data):
        replica = tf.distribute.get_replica_context()
        replicas = replica.num_replicas_in_sync if replica else 1
        with tf.GradientTape() as tape:
            outputs = self(data, training=True)
            per_example = self.per_example_loss(data, outputs)
            # This replica's share of the mean over the global batch.
            loss = tf.reduce_sum(per_example) / tf.cast(tf.shape(per_example)[0] * replicas, tf.float32)
            scaled = self.guard.scale(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        optimization.apply_gradients(self.optimizer, self.guard.unscale(grads), self.trainable_variables,
                                     self.config.clip_norm, guard=self.guard, loss=loss)
        self.loss_metric.update_state(loss * replicas)
        self.update_task_metrics(data, outputs)
        return {m.name: m.result() for m in self.metrics}

    def update_task_metrics(self, data, outputs):
        pass

    def predict_step(self, data):
        return self(data, training=False)


class ElectraClassifier(FinetuningModel):
    """A sentence(-pair) classifier or regressor on ELECTRA's discriminator.

    The authors' head: the [CLS] hidden state -> dropout -> dense, stored as
    `task_specific/<task_name>/dense/{kernel,bias}`. With the config's
    `classifier_head="hf"`, Hugging Face's `ElectraClassificationHead` instead
    (what a classifier fine-tuned there comes with): dropout -> dense(H) -> GELU
    -> dropout -> dense, stored as `task_specific/<task_name>/classifier/{dense,out_proj}/{kernel,bias}`.

    Args:
      config: an `ElectraConfig` (encoder sizes, dropout, clip_norm).
      num_outputs: number of classes, or 1 for regression.
      task_name: names the head's variables.
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

    KIND = "classifier"

    def __init__(self, config, num_outputs, task_name, regression=False, **kwargs):
        super().__init__(config, task_name, **kwargs)
        self.regression = regression
        self.dropout = modeling.CounterDropout(config.dropout_prob)
        # Keras' "gelu" is the exact (erf) one, as Hugging Face's head has it whatever the encoder's hidden_act.
        self.hidden = keras.layers.Dense(
            config.hidden_size, activation="gelu", kernel_initializer=modeling.initializer(config), dtype="float32",
            name="task_hidden") if config.classifier_head == "hf" else None
        self.head = keras.layers.Dense(num_outputs, kernel_initializer=modeling.initializer(config),
                                       dtype="float32", name="task_head")
        self.accuracy_metric = None if regression else keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return super().metrics + ([self.accuracy_metric] if self.accuracy_metric is not None else [])

    def call(self, features, training=None):
        pooled = self.dropout(self.encode(features, training)[:, 0], training=training)
        if self.hidden is not None:
            pooled = self.dropout(self.hidden(pooled), training=training)
        logits = self.head(pooled)
        return logits[:, 0] if self.regression else logits

    def head_variables(self):
        if self.hidden is None:
            return {"dense/kernel": self.head.kernel, "dense/bias": self.head.bias}
        return {"classifier/dense/kernel": self.hidden.kernel, "classifier/dense/bias": self.hidden.bias,
                "classifier/out_proj/kernel": self.head.kernel, "classifier/out_proj/bias": self.head.bias}

    def per_example_loss(self, data, outputs):
        if self.regression:
            return tf.square(outputs - tf.cast(data["label_ids"], tf.float32))
        return keras.losses.sparse_categorical_crossentropy(data["label_ids"], outputs, from_logits=True)

    def update_task_metrics(self, data, outputs):
        if self.accuracy_metric is not None:
            self.accuracy_metric.update_state(data["label_ids"], outputs)


class ElectraQuestionAnswering(FinetuningModel):
    """Extractive QA (SQuAD) on ELECTRA's discriminator: answer-span logits over the context.

    Start and end logits come from one dense layer over every position,
    masked to the context tokens and [CLS] (a window's "no answer"). With
    `joint=True`, the authors' head: the end is predicted conditioned on the
    start (the start's hidden state joins each position's, through a GELU
    layer of `qa_joint_hidden_size`), on the gold start in training and on
    each of the `qa_beam_size` best starts in inference. With `answerable`
    (SQuAD 2.0), a classifier on [CLS] and the start-weighted context says
    whether the question has no answer; its loss counts `answerable_weight`.

    Args:
      config: an `ElectraConfig`.
      task_name: names the head's variables (`task_specific/<task_name>/...`).
      joint: the authors' start-conditioned end head.
      answerable: add the no-answer classifier.

    Returns (call):
      dict of float32 `start_logits` [batch, length], `end_logits`
      ([batch, length], or [batch, beam, length] for the joint head in
      inference, with int32 `start_top_index` [batch, beam]) and, with
      `answerable`, `impossible_logits` [batch] (positive: no answer).
    """

    KIND = "squad"

    def __init__(self, config, task_name, joint=False, answerable=False, **kwargs):
        super().__init__(config, task_name, **kwargs)
        self.joint, self.answerable = joint, answerable
        dense = lambda units, name, activation=None: keras.layers.Dense(
            units, activation=activation, kernel_initializer=modeling.initializer(config), dtype="float32",
            name=name)
        self.start_dense = dense(1, "start_logits")
        self.end_dense = dense(1, "end_logits")
        self.end_hidden = dense(config.qa_joint_hidden_size, "end_hidden", config.hidden_act) if joint else None
        self.answerable_hidden = dense(config.qa_joint_hidden_size, "answer_class_hidden",
                                       config.hidden_act) if answerable else None
        self.answerable_dense = dense(1, "answer_class") if answerable else None

    def call(self, features, training=None):
        hidden = tf.cast(self.encode(features, training), tf.float32)
        context = tf.cast(features["segment_ids"] * features["input_mask"], tf.bool)
        allowed = tf.concat([tf.ones_like(context[:, :1]), context[:, 1:]], axis=1)  # [CLS] means no answer.
        penalty = (1.0 - tf.cast(allowed, tf.float32)) * -1e4
        start_logits = self.start_dense(hidden)[..., 0] + penalty
        outputs = {"start_logits": start_logits}
        if not self.joint:
            outputs["end_logits"] = self.end_dense(hidden)[..., 0] + penalty
        elif training:
            start_hidden = tf.gather(hidden, features["start_positions"], batch_dims=1)[:, None]
            outputs["end_logits"] = self._joint_end(hidden, start_hidden) + penalty
        else:
            beam = tf.minimum(self.config.qa_beam_size, tf.shape(start_logits)[1])  # Short served inputs.
            top = tf.math.top_k(start_logits, k=beam).indices
            start_hidden = tf.gather(hidden, top, batch_dims=1)  # [batch, beam, hidden]
            end = self._joint_end(hidden[:, None], start_hidden[:, :, None])
            outputs.update(end_logits=end + penalty[:, None], start_top_index=top)
        if self.answerable:
            start_feature = tf.einsum("bl,blh->bh", tf.nn.softmax(start_logits), hidden)
            joined = tf.concat([hidden[:, 0], start_feature], axis=-1)
            outputs["impossible_logits"] = self.answerable_dense(self.answerable_hidden(joined))[:, 0]
        return outputs

    def _joint_end(self, hidden, start_hidden):
        """End logits with each position's hidden state joined to the (broadcast) start's."""
        shape = tf.broadcast_dynamic_shape(tf.shape(hidden)[:-1], tf.shape(start_hidden)[:-1])
        joined = tf.concat([tf.broadcast_to(h, tf.concat([shape, tf.shape(h)[-1:]], 0))
                            for h in (hidden, start_hidden)], axis=-1)
        return self.end_dense(self.end_hidden(joined))[..., 0]

    def head_variables(self):
        layers = [self.start_dense, self.end_dense, self.end_hidden, self.answerable_hidden, self.answerable_dense]
        return {f"{layer.name}/{leaf}": getattr(layer, leaf) for layer in layers if layer is not None
                for leaf in ("kernel", "bias")}

    def per_example_loss(self, data, outputs):
        ce = lambda labels, logits: keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = (ce(data["start_positions"], outputs["start_logits"])
                + ce(data["end_positions"], outputs["end_logits"])) / 2
        if self.answerable:
            loss += self.config.answerable_weight * tf.nn.sigmoid_cross_entropy_with_logits(
                tf.cast(data["is_impossible"], tf.float32), outputs["impossible_logits"])
        return loss


class ElectraTagger(FinetuningModel):
    """A token tagger (part of speech, chunks, named entities) on ELECTRA's discriminator.

    The authors' head: one dense layer over every position's hidden state,
    stored as `task_specific/<task_name>/dense/{kernel,bias}`, with no dropout
    of its own (the encoder's output has had its dropout). The loss of a
    sentence is the sum of its labelled positions' cross-entropies (the
    authors'); positions with a negative label (`tagging.IGNORE`) carry none.

    Args:
      config: an `ElectraConfig`.
      num_labels: the number of tags.
      task_name: names the head's variables.

    Call args:
      features: dict of int32 `input_ids`, `input_mask`, `segment_ids` [batch, length].

    Returns:
      float32 logits [batch, length, num_labels].

    Example:
    ```python
    model = ElectraTagger(config, num_labels=len(data.labels), task_name="chunk")
    tags = model(features).numpy().argmax(-1)  # Read at each word's first piece.
    ```
    """

    KIND = "tagger"

    def __init__(self, config, num_labels, task_name, **kwargs):
        super().__init__(config, task_name, **kwargs)
        self.head = keras.layers.Dense(num_labels, kernel_initializer=modeling.initializer(config),
                                       dtype="float32", name="task_head")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return super().metrics + [self.accuracy_metric]

    def call(self, features, training=None):
        return self.head(self.encode(features, training))

    def head_variables(self):
        return {"dense/kernel": self.head.kernel, "dense/bias": self.head.bias}

    @staticmethod
    def _labelled(data):
        labels = data["label_ids"]
        return tf.maximum(labels, 0), tf.cast(labels >= 0, tf.float32)

    def per_example_loss(self, data, outputs):
        labels, weights = self._labelled(data)
        losses = keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=True)
        return tf.reduce_sum(losses * weights, axis=-1)

    def update_task_metrics(self, data, outputs):
        labels, weights = self._labelled(data)
        self.accuracy_metric.update_state(labels, outputs, sample_weight=weights)


def model_for_task(config, info):
    """The built, untrained model of a fine-tuned model dir's task.json (`tasks.write_task_file`).

    Example:
    ```python
    model = model_for_task(config, tasks.read_task_file("runs/sst/trial_1"))
    ```
    """
    kind = info.get("kind", "classifier")
    if kind == "squad":
        model = ElectraQuestionAnswering(config, info["task"], info["joint"], info["answerable"])
    elif kind == "tagger":
        model = ElectraTagger(config, len(info["labels"]), info["task"])
    else:
        labels = info["labels"]
        model = ElectraClassifier(config, len(labels) if labels else 1, info["task"], regression=labels is None)
    model.build_variables()
    return model


def layerwise_multipliers(model, authors_off_by_one=False):
    """(variable, learning-rate multiplier) pairs from the config's `layerwise_lr_decay`."""
    names = model.variable_names()
    by_name = optimization.layerwise_lr_multipliers(
        names, model.config.num_hidden_layers, model.config.layerwise_lr_decay, authors_off_by_one)
    return [(names[name], multiplier) for name, multiplier in by_name.items()]


# Pre-training parts (and other tasks' heads) a fine-tuning model has no use for: the generator (an untied one's
# embeddings, adversarial ELECTRA's baseline, Electric's towers) and every variant's pre-training heads.
_PRETRAINING_ONLY = (*checkpoint_interop.GENERATOR_PREFIXES, *electric.GENERATOR_PREFIXES,
                     "discriminator_predictions/", "discriminator_mlm_predictions/", "copy_predictions/",
                     "task_specific/")


def load_pretrained(model, path, labels=None):
    """Initialises the encoder, and the task head when the checkpoint has one for this task.

    The head comes too from a fine-tuned electra_tf model dir of the same task
    (`task_specific/<task>/`) and from a Hugging Face ElectraForSequenceClassification,
    ElectraForTokenClassification or ElectraForQuestionAnswering dir of the
    model's kind (`hf_heads`): further fine-tuning or evaluation of a fine-tuned
    model. The generator, pre-training heads and other tasks' heads are left out
    and counted; anything else the model does not use, a missing variable or a
    shape that does not fit is an error naming it.

    Args:
      model: a built `FinetuningModel`.
      path: what `checkpoint_interop.detect_format` recognises.
      labels: the task's label names in id order, checked against the ones a
        fine-tuned checkpoint names (None: regression, SQuAD, or unchecked).

    Returns:
      The detected format.

    Raises:
      ValueError naming the flag: a head whose outputs or labels do not fit
      the task's, or weights that do not fit --model_size/--hparams.
    """
    source = checkpoint_interop.detect_format(path)
    arrays = checkpoint_interop.read_checkpoint(path, source)
    prefix = f"task_specific/{model.task_name}/"
    head, source_info = _checkpoint_head(path, source, arrays, model)
    names = checkpoint_interop.encoder_names(model.encoder, "electra")
    if head:
        _check_head(model, path, head)
        head = _in_label_order(model, path, head, source_info, labels)
        arrays = {n: a for n, a in arrays.items() if not n.startswith(hf_heads.HF_HEAD_PREFIXES + (prefix,))}
        arrays.update({prefix + name: a for name, a in head.items()})
        names = model.variable_names()
    left_out = [n for n in arrays if n not in names and n.startswith(_PRETRAINING_ONLY + hf_heads.HF_HEAD_PREFIXES)]
    try:
        checkpoint_interop.assign(names, {n: a for n, a in arrays.items() if n not in left_out})
    except ValueError as e:
        raise ValueError(f"--init_checkpoint={path} does not fit --model_size/--hparams: {e}") from e
    logging.info("initialised the encoder%s from %s (%s); left out %d pre-training or other tasks' variables",
                 f" and the {model.task_name} head" if head else "", path, source, len(left_out))
    return source


def _checkpoint_head(path, source, arrays, model):
    """(this task's head in the checkpoint, by names relative to its prefix, or {}; the task.json that goes with it)."""
    if source == "hf":
        hf_config = hf_heads.read_hf_config(path)
        info = hf_heads.task_info(hf_config, arrays)
        if info is None or info["kind"] != model.KIND:
            return {}, info  # Another kind's head is left out, as another task's.
        return hf_heads.head_from_hf(hf_config, arrays)[0], info
    prefix = f"task_specific/{model.task_name}/"
    head = {n[len(prefix):]: a for n, a in arrays.items() if n.startswith(prefix)}
    task_file = os.path.join(checkpoint_interop.model_dir_of(path), tasks.TASK_FILE)
    info = tasks.read_task_file(os.path.dirname(task_file)) if head and os.path.isfile(task_file) else None
    return head, info


def _check_head(model, path, head):
    own = {name: tuple(v.shape) for name, v in model.head_variables().items()}
    if set(head) != set(own):
        raise ValueError(f"--init_checkpoint={path} holds a {model.task_name} head of {sorted(head)}; this model's "
                         f"head is {sorted(own)} (--joint_prediction, --answerable_classifier and the config's "
                         "classifier_head choose it)")
    for name, shape in own.items():
        theirs = head[name].shape
        if theirs != shape:
            why = (f"its labels do not fit the task's ({theirs[-1]} outputs, the task has {shape[-1]})"
                   if theirs[:-1] == shape[:-1] else "its sizes are not --model_size/--hparams'")
            raise ValueError(f"--init_checkpoint={path}: its {model.task_name} head's {name} has shape {theirs}, "
                             f"this task's needs {shape}: {why}")


def _in_label_order(model, path, head, info, labels):
    """The head with its outputs in the task's label order, when the checkpoint names the same labels otherwise.

    A task's labels are in the order its training file shows them, which
    need not be the order a model was fine-tuned with.
    """
    named = info.get("labels") if info else None
    if labels is None or named is None or list(named) == list(labels) or hf_heads.generic_labels(named):
        return head
    if sorted(named) != sorted(labels):
        raise ValueError(f"--init_checkpoint={path}: its head's labels {list(named)} are not the task's "
                         f"{list(labels)}")
    order = [list(named).index(label) for label in labels]
    outputs = {name for name, v in model.head_variables().items() if v is model.head.kernel or v is model.head.bias}
    logging.info("--init_checkpoint=%s: its head's outputs reordered from %s to the task's %s", path, named, labels)
    return {name: a[..., order] if name in outputs else a for name, a in head.items()}


# --- Inputs ---

FEATURES = ("input_ids", "input_mask", "segment_ids", "label_ids")


def train_dataset(features, batch_size, seed, input_context=None, start_step=0):
    """Shuffled, repeated training batches; epochs are permutations of the examples.

    Only indices are shuffled (`input_order.index_stream`, a function of the
    seed and the position, so a resumed run continues at its example); the
    feature arrays are gathered per batch.

    Args:
      features: dict of numpy arrays with one row per example.
      batch_size: the global batch; under a strategy each replica gets its share.
      seed: fixes the order.
      input_context: `tf.distribute.InputContext`: yield this input pipeline's per-replica batches.
      start_step: the step to resume at.
    """
    arrays = {k: tf.constant(features[k]) for k in FEATURES}
    indices = input_order.index_stream(len(features["input_ids"]), seed, start_step * batch_size)
    batches = input_order.replica_batches(indices, batch_size, input_context)
    return batches.map(lambda i: {k: tf.gather(v, i) for k, v in arrays.items()}).prefetch(tf.data.AUTOTUNE)


def eval_dataset(features, batch_size):
    """Every example once, in order; the last batch is padded (static shapes for XLA/TPU).

    Args:
      features: dict of numpy arrays with one row per example.

    Returns:
      (dataset, number of real examples): predictions beyond that number are padding.
    """
    n = len(features["input_ids"])
    padded = -n % batch_size
    arrays = {k: np.concatenate([v, np.zeros((padded,) + v.shape[1:], v.dtype)])
              for k, v in features.items() if isinstance(v, np.ndarray)}
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=True), n
