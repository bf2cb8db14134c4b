"""ELECTRA's networks in Keras 3: the shared embedding block, encoders and heads.

The encoder is BERT's: embeddings (word + position + token type, LayerNorm,
dropout), an `embeddings_project` dense when the embedding size differs from
the hidden size, then post-LN transformer layers (keras-hub's
`TransformerEncoder`, whose one `dropout` rate serves both the attention
probabilities and the hidden states, as BERT's 0.1/0.1 does). There is no
pooler: the sentence vector is the [CLS] hidden state. Every dropout is a
`CounterDropout` (keras-hub's too), whose masks XLA compiles into fast code.
"""

import keras
import keras_hub
from keras import ops
import tensorflow as tf

from electra_tf import masking


def initializer(config):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


@keras.saving.register_keras_serializable(package="electra_tf")
class CounterDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose mask is a keyed integer hash of (seed, element index).

    Keras draws dropout masks with stateless Philox, which XLA expands into
    slow code on CPU (a tiny pre-training step 4.4x slower with XLA than
    without); integer hashing fuses with the surrounding ops. The seed comes
    from the layer's own `SeedGenerator`, advanced once per call as Keras
    does, so checkpoints hold the same state and a resumed run draws the same
    masks; the masks are bit-identical with and without XLA.

    Example:
    ```python
    layer = CounterDropout(0.1)
    y = layer(x, training=True)
    ```
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.noise_shape is not None:
            raise ValueError(f"{self.name}: CounterDropout does not support noise_shape")
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        keep = masking.counter_uniform(seed, tf.shape(inputs)) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))


def use_counter_dropout(layer):
    """Turns every `keras.layers.Dropout` inside `layer` (keras-hub's included) into a `CounterDropout`.

    The objects are kept (their seed generators and names too), only their
    class changes, so this works on layers keras-hub builds internally.
    """
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        if type(sublayer) is keras.layers.Dropout:
            sublayer.__class__ = CounterDropout


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEmbeddings(keras.layers.Layer):
    """Word + position + token-type embeddings, LayerNorm and dropout.

    ELECTRA's generator and discriminator share one instance of this whole
    block (all three tables and the LayerNorm).

    Args:
      vocab_size, embedding_size, max_position_embeddings, type_vocab_size:
        table sizes.
      dropout: dropout rate after the LayerNorm.
      layer_norm_eps: LayerNorm epsilon.
      initializer_range: stddev of the truncated-normal initialiser.

    Example:
    ```python
    embeddings = ElectraEmbeddings(30522, 128, 512, 2, 0.1, 1e-12, 0.02)
    x = embeddings(token_ids, segment_ids)  # [batch, length, 128]
    ```
    """

    def __init__(self, vocab_size, embedding_size, max_position_embeddings, type_vocab_size,
                 dropout, layer_norm_eps, initializer_range, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.word_embeddings = keras_hub.layers.ReversibleEmbedding(
            vocab_size, embedding_size, embeddings_initializer=init, dtype=self.dtype_policy,
            name="word_embeddings")
        self.position_embeddings = keras_hub.layers.PositionEmbedding(
            max_position_embeddings, initializer=init, dtype=self.dtype_policy, name="position_embeddings")
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, embedding_size, embeddings_initializer=init, dtype=self.dtype_policy,
            name="token_type_embeddings")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm")
        self.dropout_layer = CounterDropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.word_embeddings.build(input_shape)
        self.position_embeddings.build(tuple(input_shape) + (self.embedding_size,))
        self.token_type_embeddings.build(input_shape)
        self.layer_norm.build(tuple(input_shape) + (self.embedding_size,))

    def call(self, token_ids, segment_ids, training=None):
        x = self.word_embeddings(token_ids)
        x = x + self.position_embeddings(x) + self.token_type_embeddings(segment_ids)
        return self.dropout_layer(self.layer_norm(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({k: getattr(self, k) for k in (
            "vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size",
            "dropout", "layer_norm_eps", "initializer_range")})
        return config

    @classmethod
    def from_electra_config(cls, config, **kwargs):
        return cls(config.vocab_size, config.embedding_size, config.max_position_embeddings,
                   config.type_vocab_size, config.dropout_prob, config.layer_norm_eps,
                   config.initializer_range, **kwargs)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEncoder(keras.layers.Layer):
    """A BERT-style transformer over a (possibly shared) embedding block.

    Args:
      embeddings: an `ElectraEmbeddings` layer; pass the same instance to two
        encoders to tie their embeddings.
      hidden_size, num_layers, num_heads, intermediate_size: transformer sizes.
      dropout, layer_norm_eps, initializer_range, activation: as in BERT.

    Call args:
      input_ids, segment_ids, input_mask: int [batch, length].

    Returns:
      The sequence output [batch, length, hidden_size].

    Example:
    ```python
    encoder = ElectraEncoder(embeddings, 256, 12, 4, 1024, 0.1, 1e-12, 0.02)
    hidden = encoder(input_ids, segment_ids, input_mask)
    cls_vector = hidden[:, 0]
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
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.embeddings_project = None
        if embeddings.embedding_size != hidden_size:
            self.embeddings_project = keras.layers.Dense(
                hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="embeddings_project")
        self.transformer_layers = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_size, num_heads=num_heads, dropout=dropout,
                activation=activation, layer_norm_epsilon=layer_norm_eps, kernel_initializer=init,
                normalize_first=False, dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(num_layers)
        ]

    def build(self, input_shape):
        if not self.embeddings.built:
            self.embeddings.build(input_shape)
        hidden_shape = tuple(input_shape) + (self.hidden_size,)
        if self.embeddings_project is not None:
            self.embeddings_project.build(tuple(input_shape) + (self.embeddings.embedding_size,))
        for layer in self.transformer_layers:
            layer.build(hidden_shape)
            use_counter_dropout(layer)  # keras-hub creates its dropout layers in build().

    def call(self, input_ids, segment_ids, input_mask, training=None, return_all_layers=False, attention_mask=None):
        """The last layer's hidden states, or (`return_all_layers`) the embedding output and every layer's.

        `attention_mask` (bool [batch or 1, length, length], query by key)
        restricts attention further than `input_mask` does: Electric's
        generator towers pass a causal mask.
        """
        x = self.embeddings(input_ids, segment_ids, training=training)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        padding_mask = ops.cast(input_mask, "bool")
        states = [x]
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=padding_mask, attention_mask=attention_mask, training=training)
            states.append(x)
        return states if return_all_layers else x

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
    def discriminator(cls, config, embeddings, **kwargs):
        """The full-size encoder (ELECTRA's discriminator, or the MLM baseline's model)."""
        return cls(embeddings, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.intermediate_size, config.dropout_prob, config.layer_norm_eps,
                   config.initializer_range, config.hidden_act, **kwargs)

    @classmethod
    def generator(cls, config, embeddings, **kwargs):
        """The small generator: hidden and depth scaled by the generator fractions."""
        return cls(embeddings, config.generator_hidden, config.generator_num_layers, config.generator_heads,
                   config.generator_intermediate, config.dropout_prob, config.layer_norm_eps,
                   config.initializer_range, config.hidden_act, **kwargs)


def masked_lm_head(config, embeddings, **kwargs):
    """Generator head: dense(E, GELU) -> LayerNorm -> tied word embeddings + bias.

    keras-hub's `MaskedLMHead` gathers the masked positions first, so the
    vocabulary projection runs on N positions, not the whole sequence. It is
    kept in float32 (keras-hub adds a float32 bias that fails under bf16).
    """
    return keras_hub.layers.MaskedLMHead(
        token_embedding=embeddings.word_embeddings, intermediate_activation=config.hidden_act,
        layer_norm_epsilon=config.layer_norm_eps, kernel_initializer=initializer(config),
        dtype="float32", **kwargs)


@keras.saving.register_keras_serializable(package="electra_tf")
class DiscriminatorHead(keras.layers.Layer):
    """dense(H, GELU) -> dense(1): one replaced-token logit per position.

    Args:
      hidden_size: width of the first dense layer.
      activation: its activation (exact GELU for ELECTRA).
      initializer_range: stddev of the truncated-normal initialiser.
      output_bias: initial bias of the logit (the authors': 0). A prior's
        log-odds, logit(replaced fraction), gives the prior from step 0, so
        the encoder is not pushed to express it.
    """

    def __init__(self, hidden_size, activation="gelu", initializer_range=0.02, output_bias=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.activation = activation
        self.initializer_range = initializer_range
        self.output_bias = output_bias
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.dense = keras.layers.Dense(hidden_size, activation=activation, kernel_initializer=init,
                                        dtype=self.dtype_policy, name="dense")
        self.dense_1 = keras.layers.Dense(1, kernel_initializer=init, dtype=self.dtype_policy, name="dense_1",
                                          bias_initializer=keras.initializers.Constant(output_bias))

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.dense_1.build(tuple(input_shape[:-1]) + (self.hidden_size,))

    def call(self, hidden):
        return ops.squeeze(self.dense_1(self.dense(hidden)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, activation=self.activation,
                      initializer_range=self.initializer_range, output_bias=self.output_bias)
        return config


class FeaturesModel(keras.Model):
    """Base of the models that take a dict of `input_ids`, `input_mask`, `segment_ids`.

    Their sub-layers create variables on the first call, so `build_variables`
    runs one forward pass on dummy input of `config.max_seq_length`.
    """

    def build(self, input_shape=None):
        self.built = True

    def build_variables(self, batch_size=2):
        """Creates every variable with one forward pass on dummy input."""
        zeros = ops.zeros([batch_size, self.config.max_seq_length], "int32")
        self({"input_ids": zeros, "input_mask": ops.ones_like(zeros), "segment_ids": zeros}, training=False)


class ElectraDiscriminator(FeaturesModel):
    """The pre-trained discriminator alone: a replaced-token logit for every position.

    What is left of ELECTRA after pre-training when the generator is dropped,
    with its head kept (fine-tuning replaces the head; serving a replaced-token
    detector keeps it).

    Args:
      config: an `ElectraConfig` (its encoder sizes).

    Call args:
      features: dict of int32 `input_ids`, `input_mask`, `segment_ids` [batch, length].

    Returns:
      float32 logits [batch, length]; positive means "replaced".

    Example:
    ```python
    model = ElectraDiscriminator(config)
    model.build_variables()
    logits = model({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    ```
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = ElectraEmbeddings.from_electra_config(config, name="embeddings")
        self.encoder = ElectraEncoder.discriminator(config, self.embeddings, name="discriminator")
        self.head = DiscriminatorHead(config.hidden_size, config.hidden_act, config.initializer_range,
                                      dtype="float32", name="discriminator_predictions")

    def call(self, features, training=None):
        hidden = self.encoder(features["input_ids"], features["segment_ids"], features["input_mask"],
                              training=training)
        return self.head(hidden)
