"""`ElectraPretrainer`: generator + discriminator with tied embeddings, their training step, the paper's variants."""

import keras
import numpy as np
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf import masking
from electra_tf import modeling
from electra_tf import optimization


# A fixed generator's log-probability floor: tokens unseen in the counted sample are (almost) never drawn,
# yet the cross-entropy of an unseen original stays finite.
UNIGRAM_FLOOR = 1e-12


class ElectraPretrainer(modeling.FeaturesModel):
    """ELECTRA's replaced-token-detection pre-training (or the BERT-style MLM baseline).

    Each step masks the batch, lets the generator (a masked LM) predict the
    masked tokens, samples replacements from it, and trains the discriminator
    to tell for every token whether it was replaced. The loss is
    `gen_weight * MLM + disc_weight * discriminator BCE`. With
    `config.objective == "mlm"` the full-size encoder is trained as a masked LM
    alone, for the paper's equal-compute baseline. The paper's other variants
    (`objective`, `weight_sharing`, `generator_kind`,
    `two_stage_generator_steps`, `generator_training`) are described in
    docs/pretraining_variants.md.

    Randomness (masking, sampling) is stateless, seeded by `config.seed`, the
    optimizer step and each example's index in the global batch: a step is
    reproducible, a resumed run continues exactly, and the replica count or
    `gradient_accumulation_steps` do not change an example's masks.

    Args:
      config: an `ElectraConfig`.
      special_ids: dict with the vocabulary's `cls`, `sep` and `mask` ids.
      unigram: float [vocab] token probabilities (`probes.unigram_distribution`),
        needed by `generator_kind="unigram"` only.

    Example:
    ```python
    pretrainer = ElectraPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})
    pretrainer.compile(optimizer=optimization.create_optimizer(config))
    pretrainer.fit(dataset, steps_per_epoch=100)
    encoder = pretrainer.discriminator  # what fine-tuning starts from
    ```
    """

    def __init__(self, config, special_ids, unigram=None, **kwargs):
        if config.objective == "electric":
            raise ValueError("ElectraPretrainer: objective=electric is trained by electric.ElectricPretrainer")
        super().__init__(**kwargs)
        self.config = config
        self.special_ids = dict(special_ids)
        # `electra`: a replaced-token discriminator is trained (its head, metrics and probes apply).
        self.electra = config.objective in config_lib.DISCRIMINATOR_OBJECTIVES
        self.samples = config.objective in config_lib.SAMPLING_OBJECTIVES
        self.embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.discriminator = modeling.ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.generator = None
        self.generator_head = None
        self.discriminator_head = None
        self.discriminator_mlm_head = None
        self.copy_head = None
        self.baseline_head = None
        self.fixed_logits = None
        # Construction order fixes the initial weights (initialisers draw their seeds when created): generator,
        # discriminator head, generator head, as always.
        if config.has_generator_network:
            self.generator = _generator(config, self.embeddings, self.discriminator)
        elif self.samples:
            self.fixed_logits = tf.constant(fixed_generator_logits(config, self.special_ids, unigram))
        if self.electra:
            self.discriminator_head = modeling.DiscriminatorHead(
                config.hidden_size, config.hidden_act, config.initializer_range, config.disc_output_bias,
                dtype="float32", name="discriminator_predictions")
        if self.fixed_logits is None:
            # The generator's head, or the MLM baseline's on the full-size encoder.
            self.generator_head = modeling.masked_lm_head(
                config, (self.generator or self.discriminator).embeddings, name="generator_predictions")
        if self.samples and not self.electra:
            # Replace MLM and All-Tokens MLM: the full-size model is a masked LM of the generator's samples.
            self.discriminator_mlm_head = modeling.masked_lm_head(
                config, self.embeddings, name="discriminator_mlm_predictions")
        if config.objective == "all_tokens_mlm":
            # The paper's copy mechanism: a sigmoid layer's probability of copying the input token.
            self.copy_head = modeling.DiscriminatorHead(
                config.hidden_size, config.hidden_act, config.initializer_range, dtype="float32",
                name="copy_predictions")
        if config.generator_training == "adversarial":
            # Adversarial ELECTRA's learned baseline: the reward expected at a masked position, from the
            # generator's state there.
            self.baseline_head = modeling.DiscriminatorHead(
                config.generator_hidden, config.hidden_act, config.initializer_range, dtype="float32",
                name="generator_baseline")
        # Two-stage training's current stage (1: the generator alone, 2: the discriminator); None: one stage.
        self.stage = None
        self._metrics = _PretrainingMetrics(self.electra, self.samples and not self.electra,
                                            adversarial=self.baseline_head is not None)
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
          `mlm_logits` [batch, N, vocab] (the generator's, or the MLM
          baseline's), and for the objectives that sample `sampled_ids`
          [batch, N], `fake_ids` and `labels` [batch, length], then ELECTRA's
          `disc_logits` [batch, length] (and adversarial ELECTRA's `baseline`
          [batch, N]), Replace MLM's `disc_mlm_logits` [batch, N, vocab], or
          All-Tokens MLM's `disc_mlm_logits` [batch, length, vocab] and
          `copy_logits` [batch, length].
        """
        c = self.config
        input_ids, input_mask, segment_ids = (features[k] for k in ("input_ids", "input_mask", "segment_ids"))
        masked, seed_sample = self.mask(features)
        outputs = {"masked": masked}
        if self.fixed_logits is not None:
            outputs["mlm_logits"] = tf.broadcast_to(
                self.fixed_logits, tf.concat([tf.shape(masked["ids"]), [c.vocab_size]], 0))
        else:
            mlm_encoder = self.generator if self.samples else self.discriminator
            # In two-stage training's second stage the generator is frozen: a fixed sampler, without dropout.
            hidden = mlm_encoder(masked["input_ids"], segment_ids, input_mask,
                                 training=training and self.stage != 2)
            outputs["mlm_logits"] = self.generator_head(hidden, mask_positions=masked["positions"])
            if self.baseline_head is not None:
                # The baseline's loss trains its head only: the generator learns from the policy gradient alone.
                at_masked = tf.gather(tf.stop_gradient(hidden), masked["positions"], batch_dims=1)
                outputs["baseline"] = self.baseline_head(at_masked)
        if not self.samples or self.stage == 1:
            return outputs
        sampled = masking.gumbel_sample(outputs["mlm_logits"], seed_sample, c.temperature,
                                        masked["ids"] if c.disallow_correct else None)
        fake_ids, labels = masking.replace_tokens(input_ids, masked, sampled)
        hidden = self.discriminator(fake_ids, segment_ids, input_mask, training=training)
        outputs.update(sampled_ids=sampled, fake_ids=fake_ids, labels=labels)
        if self.electra:
            outputs["disc_logits"] = self.discriminator_head(hidden)
        elif self.copy_head is None:  # Replace MLM: the masked positions' original tokens.
            outputs["disc_mlm_logits"] = self.discriminator_mlm_head(hidden, mask_positions=masked["positions"])
        else:  # All-Tokens MLM: every position's.
            every = tf.broadcast_to(tf.range(tf.shape(input_ids)[1])[None], tf.shape(input_ids))
            outputs["disc_mlm_logits"] = self.discriminator_mlm_head(hidden, mask_positions=every)
            outputs["copy_logits"] = self.copy_head(hidden)
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

        `mlm` is the generator's (or the MLM baseline's) masked-LM loss; `disc`
        the full-size model's: the replaced-token loss (over the masked
        positions only for `electra_15`), or for `replace_mlm` and
        `all_tokens_mlm` its masked-LM loss. With adversarial generator
        training the total takes the generator's `adversarial_losses` in place
        of `mlm`, which is still reported.

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
        if self.stage == 1:
            return total, mlm_loss, disc_loss
        if self.stage == 2:  # The frozen generator's loss is reported, not trained.
            total = tf.constant(0.0)
        if self.baseline_head is not None:
            policy_loss, baseline_loss = self.adversarial_losses(outputs, num_predictions)
            total = c.gen_weight * policy_loss + baseline_loss
        if c.objective == "electra":
            mask = tf.cast(features["input_mask"], tf.float32)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(
                tf.cast(outputs["labels"], tf.float32), outputs["disc_logits"])
            disc_loss = tf.reduce_sum(bce * mask) / num_tokens
        elif c.objective == "electra_15":  # Only the masked positions count.
            disc_loss = tf.reduce_sum(masked_replaced_token_loss(outputs) * masked["weights"]) / num_predictions
        elif c.objective == "replace_mlm":
            ce = keras.losses.sparse_categorical_crossentropy(masked["ids"], outputs["disc_mlm_logits"],
                                                              from_logits=True)
            disc_loss = tf.reduce_sum(ce * masked["weights"]) / num_predictions
        elif c.objective == "all_tokens_mlm":
            log_p = copy_mixture_log_likelihood(outputs["disc_mlm_logits"], outputs["copy_logits"],
                                                features["input_ids"], outputs["fake_ids"])
            disc_loss = -tf.reduce_sum(log_p * tf.cast(features["input_mask"], tf.float32)) / num_tokens
        if self.electra:
            total += c.disc_weight * disc_loss
        elif self.samples:
            # A cross-entropy like the generator's: weight 1 (disc_weight scales the binary loss only).
            total += disc_loss
        return total, mlm_loss, disc_loss

    def adversarial_losses(self, outputs, num_predictions):
        """(policy, baseline) losses of adversarial ELECTRA's generator, summed over the masked positions.

        REINFORCE: the reward of a sample is the discriminator's loss at its
        position (`masked_replaced_token_loss`), which the generator is to
        raise; the policy loss is `-(reward - baseline) * log p_G(sample)`,
        with `p_G` the distribution the sample was drawn from
        (`masking.sampling_logits`). Reward and baseline enter it as
        constants, so it trains the generator alone, neither the discriminator
        nor the baseline. The baseline's loss is its squared error against
        the reward. Both are divided by `num_predictions`, the global batch's
        masked positions.
        """
        c, masked = self.config, outputs["masked"]
        reward = tf.stop_gradient(masked_replaced_token_loss(outputs))
        logits = masking.sampling_logits(outputs["mlm_logits"], c.temperature,
                                         masked["ids"] if c.disallow_correct else None)
        log_p = tf.gather(tf.nn.log_softmax(logits), outputs["sampled_ids"], batch_dims=2)
        advantage = reward - tf.stop_gradient(outputs["baseline"])
        policy_loss = -tf.reduce_sum(advantage * log_p * masked["weights"]) / num_predictions
        baseline_loss = tf.reduce_sum(tf.square(outputs["baseline"] - reward) * masked["weights"]) / num_predictions
        return policy_loss, baseline_loss

    def set_stage(self, stage):
        """Makes two-stage training's `stage` (1: the generator alone; 2: the discriminator, generator frozen) current.

        Only the stage's own weights stay trainable, so the other side gets
        neither updates nor weight decay. Call before the training step is
        traced, after the optimizer is built on all the weights.
        """
        if not self.config.two_stage_generator_steps or stage not in (1, 2):
            raise ValueError(f"set_stage({stage!r}): needs two_stage_generator_steps > 0 and a stage of 1 or 2")
        self.stage = stage
        for layer in (self.generator, self.generator_head):
            layer.trainable = stage == 1
        for layer in (self.discriminator, self.discriminator_head):  # The discriminator holds its embeddings.
            layer.trainable = stage == 2

    def initialize_discriminator_from_generator(self):
        """Copies the generator's encoder, embeddings included, into the discriminator (its head stays fresh)."""
        source, target = self.generator.weights, self.discriminator.weights
        if [tuple(v.shape) for v in source] != [tuple(v.shape) for v in target]:
            raise ValueError("two-stage training: the generator's and the discriminator's weights differ in shape")
        for value, variable in zip(source, target):
            variable.assign(value)

    def train_in_stages(self, train):
        """Two-stage training: the generator alone up to `two_stage_generator_steps`, then the discriminator.

        The discriminator is initialised from the generator when the run
        reaches the boundary (a run resumed from the boundary's checkpoint,
        which holds the weights before the copy, copies again), so a resumed
        run continues exactly.

        Args:
          train: `(num_steps, restore) -> summary`: trains to `num_steps`
            total steps, first restoring the latest checkpoint if `restore`
            (a `training.Trainer.train` call).

        Returns:
          The second stage's summary with `stages`, both stages' summaries.
        """
        boundary = self.config.two_stage_generator_steps
        self.set_stage(1)
        first = train(boundary, True)
        if first["preempted"]:
            return dict(first, stages=[first])
        step = int(self.optimizer.iterations.numpy())
        self.set_stage(2)
        if step == boundary:
            self.initialize_discriminator_from_generator()
        second = train(self.config.num_train_steps, step != boundary)
        return dict(second, stages=[first, second])

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


def _generator(config, embeddings, discriminator):
    """The generator encoder under `config.weight_sharing`: own weights, the shared embeddings, or the discriminator."""
    if config.weight_sharing == "all":
        return discriminator
    if config.weight_sharing == "none":
        # The authors' untied generator embeds at its own hidden size, so it needs no projection.
        embeddings = modeling.ElectraEmbeddings(
            config.vocab_size, config.generator_embedding_size, config.max_position_embeddings,
            config.type_vocab_size, config.dropout_prob, config.layer_norm_eps, config.initializer_range,
            name="generator_embeddings")
    return modeling.ElectraEncoder.generator(config, embeddings, name="generator")


def fixed_generator_logits(config, special_ids, unigram=None):
    """Logits [vocab] of a weightless generator: `uniform` (the authors' zeros) or `unigram` (log frequencies).

    Args:
      config: an `ElectraConfig` with `generator_kind` "uniform" or "unigram".
      special_ids: the vocabulary's special ids (unused by `uniform`, which
        draws from the whole vocabulary as the authors' `uniform_generator`).
      unigram: float [vocab] probabilities (`probes.unigram_distribution`), for "unigram".

    Example:
    ```python
    logits = fixed_generator_logits(config.replace(generator_kind="uniform"), special_ids)  # zeros
    ```
    """
    if config.generator_kind == "uniform":
        return np.zeros([config.vocab_size], np.float32)
    if unigram is None:
        raise ValueError("generator_kind='unigram' needs the corpus's unigram distribution (unigram=...)")
    unigram = np.asarray(unigram, np.float64)
    if unigram.shape != (config.vocab_size,) or not np.isclose(unigram.sum(), 1.0) or (unigram < 0).any():
        raise ValueError(f"unigram: expected {config.vocab_size} probabilities summing to 1, got shape "
                         f"{unigram.shape}, sum {unigram.sum():.4g}")
    return np.log(np.maximum(unigram, UNIGRAM_FLOOR)).astype(np.float32)


def copy_mixture_log_likelihood(logits, copy_logits, target_ids, input_ids):
    """log p(target) under All-Tokens MLM's copy mechanism, per position.

    p(x) = D * 1[x = input token] + (1 - D) * softmax(logits)[x], with
    D = sigmoid(copy_logits): the paper's copy probability mixed with the
    masked-LM softmax. Computed in log space for stability.

    Args:
      logits: float [batch, length, vocab] of the masked-LM head at every position.
      copy_logits: float [batch, length].
      target_ids: int [batch, length], the original tokens to predict.
      input_ids: int [batch, length], the model's input (samples written in).

    Returns:
      float [batch, length].
    """
    log_softmax = tf.gather(tf.nn.log_softmax(logits), target_ids, batch_dims=2)
    from_softmax = tf.math.log_sigmoid(-copy_logits) + log_softmax
    with_copy = tf.reduce_logsumexp(tf.stack([tf.math.log_sigmoid(copy_logits), from_softmax]), axis=0)
    return tf.where(tf.equal(target_ids, input_ids), with_copy, from_softmax)


def masked_replaced_token_loss(outputs):
    """The discriminator's binary cross-entropy [batch, N] at the masked positions (`outputs` of `call`)."""
    at = outputs["masked"]["positions"]
    return tf.nn.sigmoid_cross_entropy_with_logits(
        tf.cast(tf.gather(outputs["labels"], at, batch_dims=1), tf.float32),
        tf.gather(outputs["disc_logits"], at, batch_dims=1))


def _global_sum(x):
    """Sum of `x` over all replicas (the global batch), kept away from zero."""
    local = tf.reduce_sum(x)
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        local = replica.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return local + 1e-6


class _PretrainingMetrics:
    """The running metrics of pre-training, updated from one step's outputs."""

    def __init__(self, electra, disc_mlm=False, adversarial=False):
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
        if adversarial:  # The generator's mean reward: the discriminator's loss at the masked positions.
            self.reward = keras.metrics.Mean(name="reward")
            self.disc.append(self.reward)
        if disc_mlm:  # Replace MLM and All-Tokens MLM: the full-size model's masked-LM loss.
            self.disc_mlm_loss = keras.metrics.Mean(name="disc_mlm_loss")
            self.disc = [self.disc_mlm_loss]

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
        if "disc_mlm_logits" in outputs:
            self.disc_mlm_loss.update_state(disc_loss)
        if self.electra and "labels" in outputs:  # Not in two-stage training's first stage.
            mask = tf.cast(features["input_mask"], tf.float32)
            labels = outputs["labels"]
            probs = tf.sigmoid(outputs["disc_logits"])
            self.disc_loss.update_state(disc_loss)
            for metric in (self.disc_accuracy, self.disc_precision, self.disc_recall, self.disc_auc):
                metric.update_state(labels, probs, sample_weight=mask)
            self.replaced_fraction.update_state(tf.cast(labels, tf.float32), sample_weight=mask)
        if "baseline" in outputs:  # A mean over the masked positions of every part, so no `share` scaling.
            self.reward.update_state(masked_replaced_token_loss(outputs), sample_weight=masked["weights"])
