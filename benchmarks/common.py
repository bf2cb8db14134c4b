"""What the benchmark scripts share: flags, the demo batches and a built, compiled pre-trainer."""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import flags  # noqa: E402

import electra_tf  # noqa: E402,F401  (switches oneDNN on before TensorFlow loads)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf import checkpoint_interop  # noqa: E402
from electra_tf import cli  # noqa: E402
from electra_tf import metrics  # noqa: E402
from electra_tf import optimization  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf import probes as probes_lib  # noqa: E402
from electra_tf.pretrainer import ElectraPretrainer  # noqa: E402

cli.define_config_flags()
cli.define_run_flags()
flags.DEFINE_string("data_dir", "/tmp/electra_tf_bench_data", "Where the demo TFRecords are built.")
flags.DEFINE_string("model_garden_python", os.path.join(ROOT, ".venv", "mg", "bin", "python"),
                    "Python of TF Model Garden's environment (`make model-garden-venv`); its peer is skipped "
                    "when this does not exist.")
FLAGS = flags.FLAGS
SPECIAL_IDS = {"cls": 101, "sep": 102, "mask": 103}  # BERT uncased, the demo's vocab.
HELDOUT_MASK_SEED = 1_000_003  # Held-out masks are drawn from it (and the seeds after it), alike at every evaluation.


def setup():
    """Returns (config, jit_compile, pretrainer, iterator of real demo training batches)."""
    config = cli.load_config(FLAGS)
    cli.set_precision(FLAGS)
    data_dir = f"{FLAGS.data_dir}_{config.max_seq_length}"
    pretraining_data.prepare_demo_data(data_dir, config.max_seq_length, config.do_lower_case)
    files = pretraining_data.tfrecord_files(data_dir, pretraining_data.TRAIN_PREFIX)
    batches = iter(pretraining_data.make_dataset(files, config.train_batch_size, config.max_seq_length, True))
    return config, cli.jit_compile(FLAGS), build_pretrainer(config), batches


def build_pretrainer(config):
    """An `ElectraPretrainer` of `config`, seeded by `config.seed`, compiled with its optimizer built."""
    keras.utils.set_random_seed(config.seed)
    model = ElectraPretrainer(config, SPECIAL_IDS)
    model.build_variables()
    model.compile(optimizer=optimization.create_optimizer(config))
    model.optimizer.build(model.trainable_variables)
    return model


def heldout_batches(config):
    """The demo's held-out batches that reference_curves.py scores every implementation on (built if missing)."""
    data_dir = f"{FLAGS.data_dir}_{config.max_seq_length}"
    pretraining_data.prepare_demo_data(data_dir, config.max_seq_length, config.do_lower_case)
    eval_files = pretraining_data.tfrecord_files(data_dir, pretraining_data.EVAL_PREFIX)
    return probes_lib.HealthProbes.from_files(eval_files, config, SPECIAL_IDS).batches


def heldout_metrics(forward, batches, mask_seed=HELDOUT_MASK_SEED):
    """`metrics.pretraining_metrics` of an electra_tf pre-trainer on held-out `batches`.

    Args:
      forward: features -> the pre-trainer's outputs (`training=False`).
      batches: dicts of numpy `input_ids`, `input_mask`, `segment_ids`.
      mask_seed: batch i is masked with seed (mask_seed, i); masks do not depend on the weights, so every model
        scored with one seed sees the same masked positions.
    """
    collected = ([], [], [], [])
    for i, batch in enumerate(batches):
        features = {k: tf.constant(v) for k, v in batch.items()}
        outputs = forward(dict(features, seed=tf.constant([mask_seed, i], tf.int32)))
        real, weights = batch["input_mask"] > 0, outputs["masked"]["weights"].numpy() > 0
        collected[0].append(outputs["disc_logits"].numpy()[real])
        collected[1].append(outputs["labels"].numpy()[real])
        collected[2].append(outputs["mlm_logits"].numpy()[weights])
        collected[3].append(outputs["masked"]["ids"].numpy()[weights])
    return metrics.pretraining_metrics(*collected)


SCORED = ("gen_accuracy", "mlm_loss", "disc_auc", "disc_loss")


def load_pair(pretrainer, run):
    """Loads the generator and discriminator saved at `run` into `pretrainer`."""
    names = checkpoint_interop.variable_names(pretrainer)
    source = checkpoint_interop.detect_format(run)
    arrays = checkpoint_interop.read_checkpoint(run, source)
    if source == "hf":
        generator_dir = os.path.join(run, "generator")
        if not os.path.isdir(generator_dir):
            raise ValueError(f"{run}: a Hugging Face dir without the generator/ that scoring needs")
        arrays = checkpoint_interop.merge_generator(arrays, checkpoint_interop.read_checkpoint(generator_dir, "hf"))
    checkpoint_interop.assign(names, arrays)


def score_runs(config, runs, batches, mask_seeds):
    """Saved generator/discriminator pairs scored on the same held-out masks.

    Each implementation's own evaluation masks with its own rule and one fixed draw, so two implementations'
    generator accuracies differ by which positions were masked as well as by their weights; here every run is
    loaded into one electra_tf pre-trainer and scored on the same `mask_seeds` draws (seeds HELDOUT_MASK_SEED, ...).

    Args:
      runs: electra_tf model dirs, or Hugging Face dirs of an `ElectraForPreTraining` with its
        `ElectraForMaskedLM` in `<dir>/generator` (as `reference_curves.py` saves the torch reference).

    Returns:
      {run: {metric: (mean, std) over the draws}} for the metrics in `SCORED`.
    """
    pretrainer = build_pretrainer(config)
    forward = tf.function(lambda features: pretrainer(features, training=False))
    results = {}
    for run in runs:
        load_pair(pretrainer, run)
        scores = [heldout_metrics(forward, batches, mask_seed=HELDOUT_MASK_SEED + s) for s in range(mask_seeds)]
        results[run] = {m: (float(np.mean([s[m] for s in scores])), float(np.std([s[m] for s in scores])))
                        for m in SCORED}
    return results


def model_garden(mode, config, data_dir, **flag_values):
    """The JSON result of `model_garden_peer.py --mode=<mode>` run in Model Garden's environment, or None.

    None (and a line saying how to install it) when that environment is missing.
    """
    if not os.path.exists(FLAGS.model_garden_python):
        print(f"Model Garden peer skipped: {FLAGS.model_garden_python} does not exist (make model-garden-venv)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        config_json = os.path.join(tmp, "config.json")
        config.to_json_file(config_json)
        command = [FLAGS.model_garden_python, os.path.join(ROOT, "benchmarks", "model_garden_peer.py"),
                   f"--mode={mode}", f"--config_json={config_json}", f"--data_dir={data_dir}"]
        command += [f"--{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                    for k, v in flag_values.items()]
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"Model Garden peer failed (exit {done.returncode}): {' '.join(command)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hf_config(config, generator=False, **extra):
    """The `transformers.ElectraConfig` of the discriminator (or, with `generator=True`, the generator) of `config`."""
    import transformers

    return transformers.ElectraConfig(
        vocab_size=config.vocab_size, embedding_size=config.embedding_size,
        hidden_size=config.generator_hidden if generator else config.hidden_size,
        num_hidden_layers=config.generator_num_layers if generator else config.num_hidden_layers,
        num_attention_heads=config.generator_heads if generator else config.num_attention_heads,
        intermediate_size=config.generator_intermediate if generator else config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        hidden_act=config.hidden_act, hidden_dropout_prob=config.dropout_prob,
        attention_probs_dropout_prob=config.dropout_prob, layer_norm_eps=config.layer_norm_eps, **extra)


def hf_pair(config):
    """Hugging Face's (ElectraForMaskedLM, ElectraForPreTraining) of `config`, sharing ELECTRA's embedding block."""
    import transformers

    generator = transformers.ElectraForMaskedLM(hf_config(config, generator=True))
    discriminator = transformers.ElectraForPreTraining(hf_config(config))
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    return generator, discriminator
