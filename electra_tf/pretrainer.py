"""`ElectraPretrainer`: generator + discriminator with tied embeddings, and their training step."""

import keras
import tensorflow as tf

from electra_tf import masking
from electra_tf import modeling
from electra_tf import optimization


class ElectraPretrainer(modeling.FeaturesModel):
    """ELECTRA's replaced-token-detection pre-training (or the BERT-style MLM baseline).

    Each step masks the batch, lets the generator (a masked LM) predict the
    masked tokens, samples replacements from it, and trains the discriminator
    to tell for every token whether it was replaced. The loss is
    `gen_weight * MLM + disc_weight * discriminator BCE`. With
    `config.objective == "mlm"` the full-size encoder is trained as a masked LM
    alone, for the paper's equal-compute baseline.

    Randomness (masking, sampling) is stateless, seeded by `config.seed`, the
    optimizer step and each example's index in the global batch: a step is
    reproducible, a resumed run continues exactly, and the replica count or
    `gradient_accumulation_steps` do not change an example's masks.

    Args:
      config: an `ElectraConfig`.
      special_ids: dict with the vocabulary's `cls`, `sep` and `mask` ids.

    Example:
    ```python
    pretrainer = ElectraPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})
    pretrainer.compile(optimizer=optimization.create_optimizer(config))
    pretrainer.fit(dataset, steps_per_epoch=100)
    encoder = pretrainer.discriminator  # what fine-tuning starts from
    ```
    """

    def __init__(self, config, special_ids, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.special_ids = dict(special_ids)
        self.electra = config.objective == "electra"
        self.embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.discriminator = modeling.ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.generator = None
        self.discriminator_head = None
        if self.electra:
            self.generator = modeling.ElectraEncoder.generator(config, self.embeddings, name="generator")
            self.discriminator_head = modeling.DiscriminatorHead(
                config.hidden_size, config.hidden_act, config.initializer_range, config.disc_output_bias,
                dtype="float32", name="discriminator_predictions")
        self.generator_head = modeling.masked_lm_head(config, self.embeddings, name="generator_predictions")
        self._metrics = _PretrainingMetrics(self.electra)
        self.guard = optimization.UpdateGuard.for_global_policy(name="update_guard")

    @property
    def metrics(self):
        return self._metrics.all()

    def call(self, features, training=None):
        """Runs masking, generator, sampling and discriminator on a batch.

        Args:
          features: dict of int32 `input_ids`, `input_mask`, `segment_ids`
            [batch, length]; optionally `seed` (int32 [2], the step's seed)
            and `example_offset` (index of the first example in the global batch).

        Returns:
          dict of per-batch tensors: `masked` (from `masking.mask_inputs`),
          `mlm_logits` [batch, N, vocab], and for ELECTRA `fake_ids`,
          `labels`, `disc_logits` [batch, length].
        """
        c = self.config
        input_ids, input_mask, segment_ids = (features[k] for k in ("input_ids", "input_mask", "segment_ids"))
        masked, seed_sample = self.mask(features)
        mlm_encoder = self.generator if self.electra else self.discriminator
        hidden = mlm_encoder(masked["input_ids"], segment_ids, input_mask, training=training)
        outputs = {"masked": masked,
                   "mlm_logits": self.generator_head(hidden, mask_positions=masked["positions"])}
        if self.electra:
            sampled = masking.gumbel_sample(outputs["mlm_logits"], seed_sample, c.temperature,
                                            masked["ids"] if c.disallow_correct else None)
            fake_ids, labels = masking.replace_tokens(input_ids, masked, sampled)
            hidden = self.discriminator(fake_ids, segment_ids, input_mask, training=training)
            outputs.update(fake_ids=fake_ids, labels=labels,
                           disc_logits=self.discriminator_head(hidden))
        return outputs

    def mask(self, features):
        """(`masking.mask_inputs`' output, the per-example seeds of the samples) of a batch.

        Both come from the step's `seed` and each example's index in the global
        batch, so every objective masks the same positions of an example.
        """
        c = self.config
        seed = features.get("seed", tf.constant([c.seed, 0], tf.int32))
        batch, offset = tf.shape(features["input_ids"])[0], features.get("example_offset", 0)
        seed_mask, seed_sample = (masking.example_seeds(s, batch, offset)
                                  for s in tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg="philox")))
        masked = masking.mask_inputs(
            features["input_ids"], features["input_mask"], seed_mask, mask_prob=c.mask_prob,
            max_predictions=c.max_predictions_per_seq, special_ids=self._never_masked(),
            mask_id=self.special_ids["mask"])
        return masked, seed_sample

    def loss_denominators(self, features):
        """Global-batch counts that normalise the losses: (masked positions, real tokens).

        Both are known before masking, so a step split into micro-batches
        normalises every part by the whole global batch's counts.
        """
        c = self.config
        predictions = masking.num_predictions(
            features["input_ids"], features["input_mask"], mask_prob=c.mask_prob,
            max_predictions=c.max_predictions_per_seq, special_ids=self._never_masked())
        return (_global_sum(tf.cast(predictions, tf.float32)),
                _global_sum(tf.cast(features["input_mask"], tf.float32)))

    def compute_losses(self, features, outputs, denominators=None):
        """Returns (total, mlm, disc) losses of this replica's (micro-)batch.

        Each is a sum over the batch's examples divided by the count over the
        GLOBAL batch (`loss_denominators`), so summing the replicas' and
        micro-batches' gradients gives exactly the gradient of the global batch.
        """
        c = self.config
        num_predictions, num_tokens = denominators or self.loss_denominators(features)
        masked = outputs["masked"]
        ce = keras.losses.sparse_categorical_crossentropy(masked["ids"], outputs["mlm_logits"], from_logits=True)
        mlm_loss = tf.reduce_sum(ce * masked["weights"]) / num_predictions
        total = c.gen_weight * mlm_loss
        disc_loss = tf.constant(0.0)
        if self.electra:
            mask = tf.cast(features["input_mask"], tf.float32)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(
                tf.cast(outputs["labels"], tf.float32), outputs["disc_logits"])
            disc_loss = tf.reduce_sum(bce * mask) / num_tokens
            total += c.disc_weight * disc_loss
        return total, mlm_loss, disc_loss

    def step_seed(self, step):
        """The stateless seed of a training step (the same on every replica)."""
        return tf.stack([tf.constant(self.config.seed, tf.int32), tf.cast(step, tf.int32)])

    def train_step(self, data):
        """One optimizer step on this replica's batch, in `gradient_accumulation_steps` micro-batches."""
        c = self.config
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica else 0
        parts = c.gradient_accumulation_steps * (replica.num_replicas_in_sync if replica else 1)
        local_batch = data["input_ids"].shape[0]
        micro_batch = local_batch // c.gradient_accumulation_steps
        seed = self.step_seed(self.optimizer.iterations)
        denominators = self.loss_denominators(data)

        def micro_step(index, micro):
            offset = tf.cast(replica_id * local_batch + index * micro_batch, tf.int32)
            features = dict(micro, seed=seed, example_offset=offset)
            with tf.GradientTape() as tape:
                outputs = self(features, training=True)
                losses = self.compute_losses(features, outputs, denominators)
                scaled = self.guard.scale(losses[0])
            grads = tape.gradient(scaled, self.trainable_variables)
            self._metrics.update(features, outputs, *losses, share=parts)
            return [tf.convert_to_tensor(g) for g in grads], losses[0]

        if c.gradient_accumulation_steps == 1:
            grads, total = micro_step(0, data)
        else:
            split = {k: tf.reshape(v, [c.gradient_accumulation_steps, micro_batch] + v.shape[1:])
                     for k, v in data.items()}
            grads = [tf.zeros_like(v) for v in self.trainable_variables]
            total = tf.constant(0.0)
            for i in tf.range(c.gradient_accumulation_steps):
                micro_grads, micro_total = micro_step(i, {k: v[i] for k, v in split.items()})
                grads = [g + m for g, m in zip(grads, micro_grads)]
                total += micro_total
        optimization.apply_gradients(self.optimizer, self.guard.unscale(grads), self.trainable_variables,
                                     c.clip_norm, guard=self.guard, loss=total)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        # Eval randomness depends on the batch itself, so an evaluation is repeatable.
        data_seed = tf.reduce_sum(data["input_ids"]) % (2 ** 30)
        features = dict(data, seed=tf.stack([tf.constant(self.config.seed + 1, tf.int32), data_seed]))
        outputs = self(features, training=False)
        replica = tf.distribute.get_replica_context()
        self._metrics.update(features, outputs, *self.compute_losses(features, outputs),
                             share=replica.num_replicas_in_sync if replica else 1)
        return {m.name: m.result() for m in self.metrics}

    def _never_masked(self):
        return [self.special_ids[k] for k in ("cls", "sep", "mask")]


def _global_sum(x):
    """Sum of `x` over all replicas (the global batch), kept away from zero."""
    local = tf.reduce_sum(x)
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        local = replica.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return local + 1e-6


class _PretrainingMetrics:
    """The running metrics of pre-training, updated from one step's outputs."""

    def __init__(self, electra):
        self.electra = electra
        self.loss = keras.metrics.Mean(name="loss")
        self.mlm_loss = keras.metrics.Mean(name="mlm_loss")
        self.gen_accuracy = keras.metrics.SparseCategoricalAccuracy(name="gen_accuracy")
        self.generic = [self.loss, self.mlm_loss, self.gen_accuracy]
        self.disc = []
        if electra:
            self.disc_loss = keras.metrics.Mean(name="disc_loss")
            self.disc_accuracy = keras.metrics.BinaryAccuracy(name="disc_accuracy")
            self.disc_precision = keras.metrics.Precision(name="disc_precision")
            self.disc_recall = keras.metrics.Recall(name="disc_recall")
            self.disc_auc = keras.metrics.AUC(name="disc_auc")
            self.replaced_fraction = keras.metrics.Mean(name="replaced_fraction")
            self.disc = [self.disc_loss, self.disc_accuracy, self.disc_precision, self.disc_recall,
                         self.disc_auc, self.replaced_fraction]

    def all(self):
        return self.generic + self.disc

    def update(self, features, outputs, total, mlm_loss, disc_loss, share):
        # Losses are one part's share of the global-batch loss, `share` parts
        # making the whole; scale back so that the metric's mean is the global loss.
        total, mlm_loss, disc_loss = (tf.cast(x, tf.float32) * share for x in (total, mlm_loss, disc_loss))
        masked = outputs["masked"]
        self.loss.update_state(total)
        self.mlm_loss.update_state(mlm_loss)
        self.gen_accuracy.update_state(masked["ids"], outputs["mlm_logits"], sample_weight=masked["weights"])
        if self.electra:
            mask = tf.cast(features["input_mask"], tf.float32)
            labels = outputs["labels"]
            probs = tf.sigmoid(outputs["disc_logits"])
            self.disc_loss.update_state(disc_loss)
            for metric in (self.disc_accuracy, self.disc_precision, self.disc_recall, self.disc_auc):
                metric.update_state(labels, probs, sample_weight=mask)
            self.replaced_fraction.update_state(tf.cast(labels, tf.float32), sample_weight=mask)
