"""Electric: ELECTRA as an energy-based cloze model (Clark et al., EMNLP 2020).

Electric models `p(x_t | context) ∝ exp(-E(x)_t)`, where the energy `E(x)_t`
is the discriminator's output at position t. It is trained by
noise-contrastive estimation: a two-tower cloze generator `q(x_t | context)`
(a left-to-right and a right-to-left Transformer, which together predict
every token from the others without masking) proposes noise tokens, and the
discriminator's logit of "noise" is `E(x)_t + log q(x_t | context) + log(k / n)`,
with `k / n = mask_prob / (1 - mask_prob)` the ratio of noise to data tokens.
This follows the authors' `run_pretraining.py` (`electric_objective` with
`two_tower_generator`); differences are said where they are.

Because no token is masked, one pass of the discriminator scores every
token, so a sentence's pseudo-log-likelihood `sum_t -E(x)_t` costs one pass
(a masked LM needs one per token): `score_sentences` re-ranks candidate
sentences with it.

Example:
```python
config = ElectraConfig.from_size("tiny", {"objective": "electric", "generator_kind": "two_tower"})
pretrainer = ElectricPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})
pretrainer.build_variables()
score_sentences(pretrainer, tokenizer, ["the cat sat on the mat .", "mat the on sat cat the ."])
```
"""

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import masking
from electra_tf import modeling
from electra_tf import optimization
from electra_tf import tokenization
from electra_tf.pretrainer import ElectraPretrainer
from electra_tf.pretrainer import _PretrainingMetrics
from electra_tf.pretrainer import _global_sum

# Checkpoint name prefixes of the generator's parts (the authors' variable scopes), which the
# energy model alone (`export.py --kind=electric_scorer`) leaves out.
GENERATOR_PREFIXES = ("generator_ltr/", "generator_rtl/", "cloze_predictions/")


def noise_log_odds(mask_prob):
    """`log(k / n)`: noise tokens per data token, as the authors add it to every logit."""
    return float(np.log(mask_prob / (1.0 - mask_prob)))


@keras.saving.register_keras_serializable(package="electra_tf")
class TwoTowerClozeGenerator(keras.layers.Layer):
    """Electric's generator: `q(x_t | x_{<t}, x_{>t})` for every position in one pass.

    A left-to-right tower (each position attends to itself and the positions
    before it) and a right-to-left tower (itself and after it), both generator-
    sized encoders over the shared embedding block, each with its own
    `embeddings_project`. Position t's prediction reads the left tower's state
    at t-1 and the right tower's at t+1, concatenated, through a masked-LM head
    tied to the word embeddings; so it never sees token t.

    As the authors' `roll`, the shift wraps around: position 0 reads the left
    tower's last state and the last position the right tower's first, which
    have seen the whole sequence. Those are [CLS] and the last slot ([SEP] or
    padding), never scored by the cloze loss.

    Args:
      embeddings: the shared `modeling.ElectraEmbeddings`.
      hidden_size, num_layers, num_heads, intermediate_size: each tower's sizes.
      dropout, layer_norm_eps, initializer_range, activation: as in BERT.

    Call args:
      input_ids, segment_ids, input_mask: int [batch, length] (unmasked).

    Returns:
      float32 log-probabilities [batch, length, vocab].

    Example:
    ```python
    generator = TwoTowerClozeGenerator.from_electra_config(config, embeddings)
    log_q = generator(input_ids, segment_ids, input_mask)
    ```
    """

    def __init__(self, embeddings, hidden_size, num_layers, num_heads, intermediate_size,
                 dropout, layer_norm_eps, initializer_range, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.activation = activation
        sizes = (hidden_size, num_layers, num_heads, intermediate_size, dropout, layer_norm_eps,
                 initializer_range, activation)
        self.ltr = modeling.ElectraEncoder(embeddings, *sizes, dtype=self.dtype_policy, name="generator_ltr")
        self.rtl = modeling.ElectraEncoder(embeddings, *sizes, dtype=self.dtype_policy, name="generator_rtl")
        # The authors' `cloze_predictions`: `modeling.masked_lm_head` over both towers' states, in float32 as it.
        self.head = keras_hub.layers.MaskedLMHead(
            token_embedding=embeddings.word_embeddings, intermediate_activation=activation,
            layer_norm_epsilon=layer_norm_eps,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype="float32", name="cloze_predictions")

    def build(self, input_shape):
        self.ltr.build(input_shape)
        self.rtl.build(input_shape)
        self.head.build(tuple(input_shape) + (2 * self.hidden_size,), tuple(input_shape))

    def towers(self, input_ids, segment_ids, input_mask, training=None):
        """The left-to-right and right-to-left towers' states [batch, length, hidden], unshifted."""
        length = tf.shape(input_ids)[1]
        lower = tf.cast(tf.linalg.band_part(tf.ones([length, length]), -1, 0), tf.bool)[None]  # key <= query
        ltr = self.ltr(input_ids, segment_ids, input_mask, training=training, attention_mask=lower)
        rtl = self.rtl(input_ids, segment_ids, input_mask, training=training,
                       attention_mask=tf.linalg.matrix_transpose(lower))  # key >= query
        return ltr, rtl

    def call(self, input_ids, segment_ids, input_mask, training=None):
        ltr, rtl = self.towers(input_ids, segment_ids, input_mask, training=training)
        # The authors' roll(ltr, -1) and roll(rtl, 1): position t gets ltr[t - 1] and rtl[t + 1].
        context = tf.concat([tf.roll(ltr, 1, axis=1), tf.roll(rtl, -1, axis=1)], axis=-1)
        positions = tf.broadcast_to(tf.range(tf.shape(input_ids)[1])[None], tf.shape(input_ids))
        return tf.nn.log_softmax(self.head(context, mask_positions=positions))

    def variable_names(self):
        """{authors' name: variable}: `generator_ltr/...`, `generator_rtl/...`, `cloze_predictions/...`."""
        names = checkpoint_interop.encoder_names(self.ltr, "generator_ltr")
        names.update(checkpoint_interop.encoder_names(self.rtl, "generator_rtl"))
        names.update(checkpoint_interop.head_names(self.head, "cloze_predictions"))
        return names

    def get_config(self):
        config = super().get_config()
        config.update({k: getattr(self, k) for k in (
            "hidden_size", "num_layers", "num_heads", "intermediate_size", "dropout",
            "layer_norm_eps", "initializer_range", "activation")})
        config["embeddings"] = keras.layers.serialize(self.embeddings)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embeddings"] = keras.layers.deserialize(config["embeddings"])
        return cls(**config)

    @classmethod
    def from_electra_config(cls, config, embeddings, **kwargs):
        """Towers of the generator's size (`generator_hidden_size`, `generator_layers`), as the authors'."""
        return cls(embeddings, config.generator_hidden, config.generator_num_layers, config.generator_heads,
                   config.generator_intermediate, config.dropout_prob, config.layer_norm_eps,
                   config.initializer_range, config.hidden_act, **kwargs)


class ElectricPretrainer(ElectraPretrainer):
    """Electric's pre-training: an energy-based cloze model trained by NCE against a two-tower generator.

    Each step (the authors' `PretrainingModel` with `electric_objective`):
    1. the two-tower generator reads the UNMASKED batch and gives
       `log q(. | context)` at every position; its loss is the cloze
       cross-entropy over every maskable token ([CLS], [SEP], [MASK] and
       padding excepted);
    2. positions are chosen as ELECTRA's masking does (`mask_prob`), and the
       tokens there are replaced by samples from q (never [MASK]: the
       generator does not read the masked input);
    3. the discriminator reads the noised sequence and gives the energy
       `E(x)_t`; its NCE logit is `E(x)_t + stop_gradient(log q(x_t | context))
       + log(mask_prob / (1 - mask_prob))`, with `log q` taken from step 1 at
       the noised token; every chosen position is labelled noise (1) even
       when the sample equals the original, all others data (0); the loss is
       the sigmoid cross-entropy averaged over real tokens.

    The loss is `gen_weight * cloze + disc_weight * NCE`. Training,
    micro-batching, replicas, seeds, metrics and checkpoints are
    `ElectraPretrainer`'s: `mlm_loss` reports the cloze loss, `gen_accuracy`
    the cloze accuracy at the chosen positions, the `disc_*` metrics the NCE
    classifier.

    Deviation from the authors' code: as in `masking.mask_inputs`, unused
    prediction slots touch nothing. In the authors' code they point at
    position 0, so whenever a sequence has fewer than `max_predictions_per_seq`
    predictions its [CLS] is overwritten by a sample and (for Electric)
    labelled noise; here [CLS] stays [CLS] and is labelled data.

    Args:
      config: an `ElectraConfig` with `objective="electric"`, `generator_kind="two_tower"`.
      special_ids: dict with the vocabulary's `cls`, `sep` and `mask` ids.

    Example:
    ```python
    pretrainer = ElectricPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})
    pretrainer.build_variables()
    pretrainer.compile(optimizer=optimization.create_optimizer(config))
    pretrainer.fit(dataset, steps_per_epoch=100)
    energies = pretrainer.energies(features)  # [batch, length]
    ```
    """

    def __init__(self, config, special_ids, **kwargs):
        if config.objective != "electric" or config.generator_kind != "two_tower":
            raise ValueError(f"ElectricPretrainer needs objective=electric and generator_kind=two_tower, got "
                             f"{config.objective!r} and {config.generator_kind!r}")
        # ElectraPretrainer's constructor builds ELECTRA's masked-LM generator; Electric has its own.
        keras.Model.__init__(self, **kwargs)
        self.config = config
        self.special_ids = dict(special_ids)
        self.electra = True  # There is a discriminator: its metrics, probes and replacement tables apply.
        self.embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.discriminator = modeling.ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.discriminator_head = modeling.DiscriminatorHead(
            config.hidden_size, config.hidden_act, config.initializer_range, config.disc_output_bias,
            dtype="float32", name="discriminator_predictions")
        self.generator = None
        self.generator_head = None
        self.cloze_generator = TwoTowerClozeGenerator.from_electra_config(config, self.embeddings,
                                                                          name="cloze_generator")
        self._metrics = _PretrainingMetrics(electra=True)
        self.guard = optimization.UpdateGuard.for_global_policy(name="update_guard")

    def energies(self, features, training=None):
        """`E(x)_t` [batch, length], float32: the discriminator head's output; `-E` scores token t."""
        hidden = self.discriminator(features["input_ids"], features["segment_ids"], features["input_mask"],
                                    training=training)
        return self.discriminator_head(hidden)

    def call(self, features, training=None):
        """Runs the cloze generator, masking, sampling and the discriminator on a batch.

        Args:
          features: as `ElectraPretrainer.call`.

        Returns:
          dict of `masked` (from `masking.mask_inputs`), `cloze_log_probs`
          [batch, length, vocab], `mlm_logits` (those at the chosen positions,
          [batch, N, vocab]), `fake_ids`, `labels`, `energies` and
          `disc_logits` (the NCE logits) [batch, length].
        """
        c = self.config
        input_ids, input_mask, segment_ids = (features[k] for k in ("input_ids", "input_mask", "segment_ids"))
        # The same seeds as ElectraPretrainer's, so both objectives choose the same positions.
        seed = features.get("seed", tf.constant([c.seed, 0], tf.int32))
        batch, offset = tf.shape(input_ids)[0], features.get("example_offset", 0)
        seed_mask, seed_sample = (masking.example_seeds(s, batch, offset)
                                  for s in tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg="philox")))
        masked = masking.mask_inputs(
            input_ids, input_mask, seed_mask, mask_prob=c.mask_prob, max_predictions=c.max_predictions_per_seq,
            special_ids=self._never_masked(), mask_id=self.special_ids["mask"])
        log_q = self.cloze_generator(input_ids, segment_ids, input_mask, training=training)
        mlm_logits = tf.gather(log_q, masked["positions"], batch_dims=1)
        sampled = masking.gumbel_sample(mlm_logits, seed_sample, c.temperature,
                                        masked["ids"] if c.disallow_correct else None)
        fake_ids = masking.scatter_into(input_ids, masked["positions"], sampled, masked["weights"])
        # Electric labels every chosen position noise, a sample equal to the original too.
        labels = masking.scatter_into(tf.zeros_like(input_ids), masked["positions"],
                                      tf.ones_like(masked["positions"]), masked["weights"])
        energies = self.energies(dict(input_ids=fake_ids, segment_ids=segment_ids, input_mask=input_mask),
                                 training=training)
        log_q_fake = tf.stop_gradient(tf.gather(log_q, fake_ids, batch_dims=2))
        disc_logits = energies + log_q_fake + noise_log_odds(c.mask_prob)
        return {"masked": masked, "cloze_log_probs": log_q, "mlm_logits": mlm_logits, "fake_ids": fake_ids,
                "labels": labels, "energies": energies, "disc_logits": disc_logits}

    def loss_denominators(self, features):
        """Global-batch counts that normalise the losses: (maskable tokens, real tokens)."""
        candidates = masking.candidate_mask(features["input_ids"], features["input_mask"], self._never_masked())
        return (_global_sum(tf.cast(candidates, tf.float32)),
                _global_sum(tf.cast(features["input_mask"], tf.float32)))

    def compute_losses(self, features, outputs, denominators=None):
        """Returns (total, cloze, NCE) losses of this replica's (micro-)batch, each over GLOBAL-batch counts."""
        c = self.config
        num_candidates, num_tokens = denominators or self.loss_denominators(features)
        candidates = tf.cast(masking.candidate_mask(features["input_ids"], features["input_mask"],
                                                    self._never_masked()), tf.float32)
        nll = -tf.gather(outputs["cloze_log_probs"], features["input_ids"], batch_dims=2)
        cloze_loss = tf.reduce_sum(nll * candidates) / num_candidates
        bce = tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(outputs["labels"], tf.float32), outputs["disc_logits"])
        nce_loss = tf.reduce_sum(bce * tf.cast(features["input_mask"], tf.float32)) / num_tokens
        return c.gen_weight * cloze_loss + c.disc_weight * nce_loss, cloze_loss, nce_loss


def sentence_scores(energies, input_ids, input_mask, special_ids):
    """Electric's pseudo-log-likelihood of each sequence: `sum_t -E(x)_t` over its maskable tokens.

    [CLS], [SEP] (and [MASK]) are left out, as training never proposed noise
    there; so is padding.

    Args:
      energies: float [batch, length], `E(x)_t`.
      input_ids, input_mask: int [batch, length].
      special_ids: ids not scored ([CLS], [SEP], [MASK]).

    Returns:
      float32 [batch]; higher is more likely.
    """
    scored = masking.candidate_mask(input_ids, input_mask, special_ids)
    return -tf.reduce_sum(tf.where(scored, tf.cast(energies, tf.float32), 0.0), axis=-1)


def score_sentences(model, tokenizer, sentences, max_seq_length=None):
    """Scores sentences in one pass each; the higher, the more likely (re-rank candidates with it).

    Args:
      model: an `ElectricPretrainer`, or a model from features to energies
        [batch, length] (`export.load_serving_module(run_dir, "electric_scorer").model`,
        an `ElectraDiscriminator` holding an Electric run's discriminator).
      tokenizer: the model's `tokenization.WordPieceTokenizer`.
      sentences: a list of strings; each is one `[CLS] text [SEP]` sequence.
      max_seq_length: the most tokens of a sequence (default: the model's config).

    Returns:
      numpy float32 [len(sentences)].

    Raises:
      ValueError naming a sentence longer than `max_seq_length` tokens (a cut
      sentence's score is not comparable with the others').

    Example:
    ```python
    module = export.load_serving_module("runs/electric", "electric_scorer")
    score_sentences(module.model, module.tokenizer, ["the cat sat .", "sat the cat ."])
    ```
    """
    max_seq_length = max_seq_length or model.config.max_seq_length
    ids, segments, truncated = tokenization.pack_inputs(tokenizer, [tf.constant(list(sentences))], max_seq_length)
    if np.any(truncated.numpy()):
        index = int(np.argmax(truncated.numpy()))
        raise ValueError(f"sentence {index} ({sentences[index][:40]!r}...) is longer than "
                         f"max_seq_length={max_seq_length} tokens")
    features = {"input_ids": ids.to_tensor(), "segment_ids": segments.to_tensor(),
                "input_mask": tf.ones_like(ids).to_tensor()}
    energies = (model.energies(features, training=False) if isinstance(model, ElectricPretrainer)
                else model(features, training=False))
    special_ids = [tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]
    return sentence_scores(energies, features["input_ids"], features["input_mask"], special_ids).numpy()
