"""Converts ELECTRA checkpoints between the authors' TF1 format, Hugging Face, keras-hub and electra_tf.

    # A released ELECTRA-Small TF1 checkpoint (generator as large as the discriminator):
    python convert_checkpoint.py --input=electra_small --input_format=authors_tf1 \
        --model_size=small --generator_hidden_size=1.0 --output_dir=models/electra_small
    # A Hugging Face ELECTRA (or BERT) model directory:
    python convert_checkpoint.py --input=hf_electra_base --input_format=hf --output_dir=models/base
    # An electra_tf model dir (pre-training run or converted) to Hugging Face:
    python convert_checkpoint.py --input=runs/pretrain_tiny_electra --input_format=native \
        --output_format=hf --output_dir=hf_out
    # The same discriminator as a keras-hub preset (ElectraBackbone + ElectraTokenizer), and back:
    python convert_checkpoint.py --input=runs/pretrain_tiny_electra --input_format=native \
        --output_format=keras_hub --output_dir=presets/electra_tiny
    python convert_checkpoint.py --input=presets/electra_tiny --input_format=keras_hub --output_dir=models/tiny
    # A fine-tuned classifier, tagger or SQuAD model (a run_finetuning.py trial dir) to Hugging Face, and back:
    python convert_checkpoint.py --input=runs/sst/trial_1 --input_format=native --output_format=hf \
        --output_dir=hf_sst
    python convert_checkpoint.py --input=hf_sst --input_format=hf --output_dir=models/sst

The electra_tf output (config.json, vocab.txt, checkpoint) is what
run_pretraining.py's --init_checkpoint takes. The Hugging Face output is an
`ElectraForPreTraining` directory, with the generator (when there is one) as
an `ElectraForMaskedLM` in `<output_dir>/generator`. The keras-hub output is
a preset that `keras_hub.models.ElectraBackbone.from_preset` loads: the
embeddings and the discriminator's encoder, without the discriminator head
and the generator, which a backbone does not hold.

A fine-tuned model (its dir holds task.json) becomes an
`ElectraForSequenceClassification`, `ElectraForTokenClassification` or
`ElectraForQuestionAnswering` directory with its labels (`id2label`), and such a
Hugging Face directory becomes an electra_tf fine-tuned model dir (config.json,
vocab.txt, task.json, checkpoint) that export_model.py serves and
run_finetuning.py's --init_checkpoint continues, head included (see `hf_heads`).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from electra_tf import checkpoint_interop as interop
from electra_tf import commands
from electra_tf import cli
from electra_tf import config as config_lib
from electra_tf import finetuning
from electra_tf import hf_heads
from electra_tf import pretraining_data
from electra_tf import tasks
from electra_tf.pretrainer import ElectraPretrainer

cli.define_config_flags()
flags.DEFINE_string("input", None, "Checkpoint prefix or directory (authors_tf1), model directory (hf, native), "
                    "preset directory (keras_hub).")
flags.DEFINE_enum("input_format", None, interop.FORMATS, "Format of --input.")
flags.DEFINE_string("generator_input", None, "With --input_format=hf: a Hugging Face ElectraForMaskedLM dir, "
                    "the generator that was trained with the --input discriminator.")
flags.DEFINE_enum("output_format", "native", ("native", "hf", "keras_hub"), "Format written to --output_dir.")
flags.DEFINE_string("output_dir", None, "Where the converted model is written.")
flags.DEFINE_string("vocab_file", None, "Vocabulary to ship with the model. Unset: the input's vocab.txt (a "
                    "keras-hub preset's vocabulary.txt) if it has one, else the BERT uncased vocab of the released "
                    "models.")
flags.mark_flags_as_required(["input", "input_format", "output_dir"])
FLAGS = flags.FLAGS


def load_config():
    if FLAGS.input_format == "native":
        return config_lib.ElectraConfig.from_json_file(os.path.join(FLAGS.input, "config.json"))
    config = cli.load_config(FLAGS)
    if FLAGS.input_format in ("hf", "keras_hub"):
        overrides = (interop.config_overrides_from_hf if FLAGS.input_format == "hf"
                     else interop.config_overrides_from_keras_hub)(FLAGS.input)
        # The size's sequence length may not fit a model with fewer positions.
        overrides["max_seq_length"] = min(config.max_seq_length, overrides["max_position_embeddings"])
        # Config flags still have the last word (a cased or uncased tokenizer: --do_lower_case).
        overrides.update({n: FLAGS[n].value for n in config_lib.field_types() if FLAGS[n].value is not None})
        if FLAGS.generator_input:
            overrides.update(interop.generator_overrides_from_hf(FLAGS.generator_input, overrides))
        config = config.replace(**overrides)
    return config


def vocab_file():
    if FLAGS.vocab_file:
        return FLAGS.vocab_file
    return interop.vocab_file_of(FLAGS.input) or pretraining_data.demo_vocab_file()


def fine_tuned_task(arrays):
    """The input's task.json when it is a fine-tuned model (an electra_tf trial dir or an HF task model), else None."""
    if FLAGS.input_format == "hf":
        return hf_heads.task_info(hf_heads.read_hf_config(FLAGS.input), arrays)
    task_dir = interop.model_dir_of(FLAGS.input)
    if FLAGS.input_format == "native" and os.path.isfile(os.path.join(task_dir, tasks.TASK_FILE)):
        return tasks.read_task_file(task_dir)
    return None


def convert_fine_tuned(config, arrays, info):
    """Writes a fine-tuned model in --output_format: its encoder and task head, with its task and labels."""
    if FLAGS.generator_input:
        raise app.UsageError(f"--generator_input: {FLAGS.input} is a fine-tuned {info['kind']}, which has none")
    if FLAGS.output_format == "keras_hub":
        raise app.UsageError(f"--output_format=keras_hub: {FLAGS.input} is a fine-tuned {info['kind']}; a keras-hub "
                             "ElectraBackbone preset holds no task head (--output_format=hf or native keep it)")
    prefix = f"task_specific/{info['task']}/"
    if FLAGS.input_format == "hf":
        head, classifier_head = hf_heads.head_from_hf(hf_heads.read_hf_config(FLAGS.input), arrays)
        config = config.replace(classifier_head=classifier_head)
        arrays = {n: a for n, a in arrays.items() if not n.startswith(hf_heads.HF_HEAD_PREFIXES)}
        arrays.update({prefix + name: a for name, a in head.items()})
    model = finetuning.model_for_task(config, info)
    names = model.variable_names()
    interop.assign(names, arrays)
    logging.info("converted %d variables (encoder and %s head) from %s", len(names), info["task"], FLAGS.input)
    if FLAGS.output_format == "native":
        interop.write_native(FLAGS.output_dir, config, vocab_file(), names)
        tasks.write_task_file(FLAGS.output_dir, info)
    else:
        values = interop.model_arrays(names)
        head = {n[len(prefix):]: a for n, a in values.items() if n.startswith(prefix)}
        encoder = {n: v for n, v in names.items() if not n.startswith(prefix)}
        interop.write_hf(encoder, config, vocab_file(), FLAGS.output_dir,
                         head=hf_heads.head_to_hf(info, head, values, config.num_hidden_layers))
    print(f"wrote {FLAGS.output_format} {info['kind']} ({info['task']}) to {FLAGS.output_dir}")


def main(argv):
    del argv
    if FLAGS.generator_input and FLAGS.input_format != "hf":
        raise app.UsageError("--generator_input goes with --input_format=hf")
    config = load_config()
    arrays = interop.read_checkpoint(FLAGS.input, FLAGS.input_format)
    info = fine_tuned_task(arrays)
    if info is not None:
        return convert_fine_tuned(config, arrays, info)
    if FLAGS.generator_input:
        arrays = interop.merge_generator(arrays, interop.read_checkpoint(FLAGS.generator_input, "hf"))
    pretrainer = ElectraPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})  # Ids unused here.
    pretrainer.build_variables()
    # Convert what the source has: an HF discriminator has no generator, an
    # ElectraModel or BERT no discriminator head. Within a part, all must match.
    names = interop.variable_names(pretrainer)
    for part in (*interop.GENERATOR_PREFIXES, "discriminator_predictions/"):
        if not any(n.startswith(part) for n in arrays):
            names = {n: v for n, v in names.items() if not n.startswith(part)}
    interop.assign(names, arrays)
    parts = sorted({n.split("/")[0] for n in names})
    logging.info("converted %d variables (%s) from %s", len(names), ", ".join(parts), FLAGS.input)

    vocab = vocab_file()
    if FLAGS.output_format == "native":
        path = interop.write_native(FLAGS.output_dir, config, vocab, names)
    elif FLAGS.output_format == "keras_hub":
        interop.write_keras_hub(names, config, vocab, FLAGS.output_dir)
        path = FLAGS.output_dir
        parts = [p for p in parts if p == "electra"]
        left_out = sorted({n.split("/")[0] for n in names} - set(parts))
        if left_out:
            logging.info("left out %s: a keras-hub ElectraBackbone holds the embeddings and the "
                         "discriminator's encoder only", ", ".join(left_out))
    else:
        # Hugging Face's ElectraForPreTraining: the encoder and the replaced-token head, nothing else.
        disc = {n: v for n, v in names.items() if n.startswith(("electra/", "discriminator_predictions/"))}
        interop.write_hf(disc, config, vocab, FLAGS.output_dir)
        path = FLAGS.output_dir
        left_out = sorted(set(parts) - {n.split("/")[0] for n in disc} - {"generator", "generator_predictions"})
        if "generator_predictions" in parts and config.weight_sharing != "embeddings":
            # ElectraForMaskedLM holds a generator that shares only the embedding block.
            left_out.append(f"the generator (weight_sharing={config.weight_sharing!r})")
        elif "generator" in parts:
            gen = {n: v for n, v in names.items()
                   if n.startswith(("generator/", "generator_predictions/", "electra/embeddings/"))}
            interop.write_hf(gen, config, vocab, os.path.join(FLAGS.output_dir, "generator"), generator=True)
        if left_out:
            print(f"not written to Hugging Face's layout, which has no place for them (use --output_format=native "
                  f"to keep them): {', '.join(left_out)}")
    print(f"wrote {FLAGS.output_format} model ({', '.join(parts)}) to {path}")


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
