"""TF Model Garden's ELECTRA as a peer: its pre-trainer timed or trained on our data, in its own environment.

Model Garden (`tf-models-official` 2.20) needs TensorFlow 2.20 and tf-keras
(Keras 2), so it cannot share electra_tf's environment; `make model-garden-venv`
builds `.venv/mg`, and `pretrain_throughput.py` and `reference_curves.py` run
this script there as a subprocess (reading its last stdout line, one JSON
object). It imports only the parts of electra_tf that need neither Keras 3
nor keras-hub: the config, the TFRecord reader, the health probes and the
metrics, so every implementation is scored with the same arithmetic.

The networks and the pre-trainer are Model Garden's, built as its
`ElectraPretrainTask` builds them: two `BertEncoder`s from `encoders.build_encoder`
(the generator given the discriminator's embedding layer: the word table is
tied, the generator keeps its own position and type tables and LayerNorm),
`models.ElectraPretrainer` (masked LM at given positions, Gumbel sampling over a
one-hot), its task's loss (MLM + disc_weight * RTD over real tokens) and its
`AdamWeightDecay` (bias-corrected Adam, decay not on LayerNorm or biases,
global-norm clipping). Its pre-trainer takes the masked positions as input
(Model Garden masks offline); they are drawn here per batch with the rule the
torch reference uses: `round(n * mask_prob)` positions, 85% [MASK], the rest
kept. The schedule is the config's, warmup multiplied onto polynomial decay.

    TF_USE_LEGACY_KERAS=1 .venv/mg/bin/python benchmarks/model_garden_peer.py --mode=throughput \\
        --config_json=CONFIG --data_dir=DIR --steps=10
    TF_USE_LEGACY_KERAS=1 .venv/mg/bin/python benchmarks/model_garden_peer.py --mode=curves \\
        --config_json=CONFIG --data_dir=DIR --points=0,100,200 --seed=1234
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import electra_tf  # noqa: E402,F401  (switches oneDNN on before TensorFlow loads, as for electra_tf)
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from electra_tf import config as config_lib  # noqa: E402
from electra_tf import metrics  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf import probes as probes_lib  # noqa: E402

flags.DEFINE_enum("mode", "throughput", ["throughput", "curves"], "Time training steps, or train and score.")
flags.DEFINE_string("config_json", None, "An electra_tf config.json (the parent script writes it).")
flags.DEFINE_string("data_dir", None, "Demo TFRecords (pretrain_data.train-*, pretrain_data.eval-*).")
flags.DEFINE_integer("steps", 10, "throughput: timed steps after two warm-up steps.")
flags.DEFINE_boolean("jit_compile", False, "throughput: XLA-compile the step (Model Garden's trainer does not).")
flags.DEFINE_list("points", [], "curves: the steps at which to score.")
flags.DEFINE_integer("seed", None, "curves: the seed (default: the config's).")
FLAGS = flags.FLAGS

SPECIAL_IDS = {"cls": 101, "sep": 102, "mask": 103}  # BERT uncased, the demo's vocab.
EVAL_SEED = 1_000_003  # The held-out masks, alike at every evaluation (common.HELDOUT_MASK_SEED; not importable here).


def build(config):
    """Model Garden's ElectraPretrainer for `config`, as `electra_task._build_pretrainer` builds it."""
    from official.modeling import tf_utils
    from official.nlp.configs import encoders
    from official.nlp.modeling import models

    def encoder(hidden, layers, heads, intermediate, embedding_layer=None):
        bert = encoders.BertEncoderConfig(
            vocab_size=config.vocab_size, hidden_size=hidden, num_layers=layers, num_attention_heads=heads,
            intermediate_size=intermediate, hidden_activation=config.hidden_act,
            dropout_rate=config.dropout_prob, attention_dropout_rate=config.dropout_prob,
            max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
            initializer_range=config.initializer_range, embedding_size=config.embedding_size)
        return encoders.build_encoder(encoders.EncoderConfig(type="bert", bert=bert), embedding_layer=embedding_layer)

    discriminator = encoder(config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                            config.intermediate_size)
    generator = encoder(config.generator_hidden, config.generator_num_layers, config.generator_heads,
                        config.generator_intermediate, embedding_layer=discriminator.get_embedding_layer())
    model = models.ElectraPretrainer(
        generator_network=generator, discriminator_network=discriminator, vocab_size=config.vocab_size,
        num_classes=2, num_token_predictions=config.max_predictions_per_seq,
        mlm_activation=tf_utils.get_activation(config.hidden_act),
        mlm_initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        disallow_correct=config.disallow_correct)
    model(mask(next(batches(config)), config, np.random.default_rng(0)))
    # The config's initial "replaced" bias, as electra_tf's head and the torch reference start.
    model.discriminator_head.bias.assign([config.disc_output_bias])
    return model


class WarmupPolynomialDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """The config's schedule: linear warmup multiplied onto polynomial decay to 0 (as electra_tf's)."""

    def __init__(self, config):
        self.c = config

    def __call__(self, step):
        c, step = self.c, tf.cast(step, tf.float32)
        rate = c.learning_rate * (1.0 - tf.minimum(step, c.num_train_steps) / c.num_train_steps) ** c.lr_decay_power
        return rate * tf.minimum(1.0, step / c.num_warmup_steps) if c.num_warmup_steps else rate


def optimizer(config):
    from official.modeling.optimization import legacy_adamw

    return legacy_adamw.AdamWeightDecay(
        learning_rate=WarmupPolynomialDecay(config), beta_1=config.adam_beta_1, beta_2=config.adam_beta_2,
        epsilon=config.adam_epsilon, weight_decay_rate=config.weight_decay_rate,
        exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"], gradient_clip_norm=config.clip_norm)


def batches(config):
    """The training batches in the order `config.seed` gives (as electra_tf's and the torch reference's)."""
    files = pretraining_data.tfrecord_files(FLAGS.data_dir, pretraining_data.TRAIN_PREFIX)
    dataset = pretraining_data.make_dataset(files, config.train_batch_size, config.max_seq_length, True,
                                            seed=config.seed)
    return dataset.as_numpy_iterator()


def mask(batch, config, rng):
    """Model Garden's inputs for one batch: the masked ids and the masked positions, ids and weights."""
    ids, input_mask = batch["input_ids"], batch["input_mask"]
    n = config.max_predictions_per_seq
    candidates = (input_mask > 0) & ~np.isin(ids, [0, *SPECIAL_IDS.values()])
    wanted = np.clip(np.round(input_mask.sum(1) * config.mask_prob), 1, n).astype(int)
    count = np.minimum(wanted, candidates.sum(1))
    scores = np.where(candidates, rng.random(ids.shape), -1.0)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    weights = np.arange(n)[None] < count[:, None]
    positions = np.where(weights, order, 0)
    targets = np.where(weights, np.take_along_axis(ids, positions, 1), 0)
    chosen = np.zeros(ids.shape, bool)
    np.put_along_axis(chosen, positions, weights, 1)
    chosen[:, 0] = False  # Position 0 stands for padding above; it is [CLS], never a candidate.
    inputs = np.where(chosen & (rng.random(ids.shape) < 0.85), SPECIAL_IDS["mask"], ids)
    return {"input_word_ids": inputs.astype(np.int32), "input_mask": input_mask.astype(np.int32),
            "input_type_ids": batch["segment_ids"].astype(np.int32),
            "masked_lm_positions": positions.astype(np.int32), "masked_lm_ids": targets.astype(np.int32),
            "masked_lm_weights": weights.astype(np.float32)}


def losses(config, inputs, outputs):
    """`ElectraPretrainTask.build_losses`: weighted MLM plus disc_weight times RTD over real tokens."""
    weights = inputs["masked_lm_weights"]
    mlm = tf_keras.losses.sparse_categorical_crossentropy(inputs["masked_lm_ids"], outputs["lm_outputs"],
                                                          from_logits=True)
    mlm = tf.reduce_sum(mlm * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
    real = tf.cast(inputs["input_mask"], tf.float32)
    rtd = tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(outputs["disc_label"], tf.float32), outputs["disc_logits"])
    return config.gen_weight * mlm + config.disc_weight * tf.reduce_sum(rtd * real) / tf.reduce_sum(real)


def train_step_fn(config, model, opt, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = losses(config, inputs, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        # The pooler and the generator's unused classification head get no gradient (as in Model Garden's task).
        opt.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])
        return loss

    return step


def throughput(config):
    tf_keras.utils.set_random_seed(config.seed)
    model, rng, data = build(config), np.random.default_rng(0), batches(config)
    step = train_step_fn(config, model, optimizer(config), FLAGS.jit_compile)
    for _ in range(2):
        step(mask(next(data), config, rng))
    start = time.time()
    for _ in range(FLAGS.steps):
        loss = step(mask(next(data), config, rng))
    float(loss)  # Waits for the last step.
    seconds = (time.time() - start) / FLAGS.steps
    return {"model_garden_ms_per_step": round(seconds * 1000, 1),
            "model_garden_tokens_per_second": round(config.train_batch_size * config.max_seq_length / seconds),
            "model_garden_jit_compile": FLAGS.jit_compile, "tensorflow": tf.__version__}


def evaluate(config, model, probes):
    """The held-out metrics (this script's masks, Model Garden's sampling) and the health probes."""
    forward = tf.function(lambda inputs: model(inputs, training=False))
    rng, collected = np.random.default_rng(EVAL_SEED), ([], [], [], [])
    for batch in probes.batches:
        inputs = mask(batch, config, rng)
        outputs = {k: v.numpy() for k, v in forward(inputs).items()}
        real, chosen = batch["input_mask"] > 0, inputs["masked_lm_weights"] > 0
        for store, value in zip(collected, (outputs["disc_logits"][real], outputs["disc_label"][real],
                                            outputs["lm_outputs"][chosen], inputs["masked_lm_ids"][chosen])):
            store.append(value)
    disc = model.discriminator_network

    @tf.function
    def encode(ids, batch):
        return disc([ids, batch["input_mask"], batch["segment_ids"]], training=False)

    def logits_fn(ids, batch):
        hidden = encode(tf.constant(ids), batch)["sequence_output"]
        return tf.squeeze(model.discriminator_head(model.discriminator_projection(hidden)), -1).numpy()

    def states_fn(batch):
        # Model Garden's encoder returns each layer's output but not the embeddings': the cosines read the
        # last layer, and hidden_norm_layer_<i> here is layer i + 1.
        return [s.numpy() for s in encode(tf.constant(batch["input_ids"]), batch)["encoder_outputs"]]

    return {**metrics.pretraining_metrics(*collected), **probes.score(logits_fn, states_fn)}


def curves(config):
    if not config.adam_bias_correction:
        raise app.UsageError("Model Garden's AdamWeightDecay is bias-corrected; the config asks for the "
                             "authors' uncorrected rule (adam_bias_correction=false), which it cannot run")
    tf_keras.utils.set_random_seed(config.seed)
    eval_files = pretraining_data.tfrecord_files(FLAGS.data_dir, pretraining_data.EVAL_PREFIX)
    probes = probes_lib.HealthProbes.from_files(eval_files, config, SPECIAL_IDS, seed=0)
    model, rng, data = build(config), np.random.default_rng(config.seed), batches(config)
    opt = optimizer(config)
    step = train_step_fn(config, model, opt)
    curve, done = [], 0
    for point in sorted(int(p) for p in FLAGS.points):
        while done < point:
            step(mask(next(data), config, rng))
            done += 1
        curve.append([point, evaluate(config, model, probes)])
    return {"curve": curve, "tensorflow": tf.__version__}


def main(argv):
    del argv
    config = config_lib.ElectraConfig.from_json_file(FLAGS.config_json)
    if FLAGS.seed is not None:
        config = config.replace(seed=FLAGS.seed)
    result = throughput(config) if FLAGS.mode == "throughput" else curves(config)
    print(json.dumps(result))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config_json", "data_dir"])
    app.run(main)
