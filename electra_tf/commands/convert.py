"""Converts ELECTRA checkpoints between the authors' TF1 format, Hugging Face and electra_tf.

    # A released ELECTRA-Small TF1 checkpoint (generator as large as the discriminator):
    python convert_checkpoint.py --input=electra_small --input_format=authors_tf1 \
        --model_size=small --generator_hidden_size=1.0 --output_dir=models/electra_small
    # A Hugging Face ELECTRA (or BERT) model directory:
    python convert_checkpoint.py --input=hf_electra_base --input_format=hf --output_dir=models/base
    # An electra_tf model dir (pre-training run or converted) to Hugging Face:
    python convert_checkpoint.py --input=runs/pretrain_tiny_electra --input_format=native \
        --output_format=hf --output_dir=hf_out

The electra_tf output (config.json, vocab.txt, checkpoint) is what
run_pretraining.py's --init_checkpoint takes. The Hugging Face output is an
`ElectraForPreTraining` directory, with the generator (when there is one) as
an `ElectraForMaskedLM` in `<output_dir>/generator`.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from electra_tf import checkpoint_interop as interop
from electra_tf import commands
from electra_tf import cli
from electra_tf import config as config_lib
from electra_tf import pretraining_data
from electra_tf.pretrainer import ElectraPretrainer

cli.define_config_flags()
flags.DEFINE_string("input", None, "Checkpoint prefix or directory (authors_tf1), model directory (hf, native).")
flags.DEFINE_enum("input_format", None, interop.FORMATS, "Format of --input.")
flags.DEFINE_string("generator_input", None, "With --input_format=hf: a Hugging Face ElectraForMaskedLM dir, "
                    "the generator that was trained with the --input discriminator.")
flags.DEFINE_enum("output_format", "native", ("native", "hf"), "Format written to --output_dir.")
flags.DEFINE_string("output_dir", None, "Where the converted model is written.")
flags.DEFINE_string("vocab_file", None, "Vocabulary to ship with the model. Unset: the input's vocab.txt if it "
                    "has one, else the BERT uncased vocab of the released models.")
flags.mark_flags_as_required(["input", "input_format", "output_dir"])
FLAGS = flags.FLAGS


def load_config():
    if FLAGS.input_format == "native":
        with open(os.path.join(FLAGS.input, "config.json")) as f:
            return config_lib.ElectraConfig.from_dict(json.load(f))
    config = cli.load_config(FLAGS)
    if FLAGS.input_format == "hf":
        overrides = interop.config_overrides_from_hf(FLAGS.input)
        # The size's sequence length may not fit a model with fewer positions.
        overrides["max_seq_length"] = min(config.max_seq_length, overrides["max_position_embeddings"])
        if FLAGS.generator_input:
            overrides.update(interop.generator_overrides_from_hf(FLAGS.generator_input, overrides))
        config = config.replace(**overrides)
    return config


def vocab_file():
    if FLAGS.vocab_file:
        return FLAGS.vocab_file
    candidate = os.path.join(FLAGS.input if os.path.isdir(FLAGS.input) else os.path.dirname(FLAGS.input),
                             "vocab.txt")
    return candidate if os.path.exists(candidate) else pretraining_data.demo_vocab_file()


def main(argv):
    del argv
    if FLAGS.generator_input and FLAGS.input_format != "hf":
        raise app.UsageError("--generator_input goes with --input_format=hf")
    config = load_config()
    arrays = interop.read_checkpoint(FLAGS.input, FLAGS.input_format)
    if FLAGS.generator_input:
        arrays = interop.merge_generator(arrays, interop.read_checkpoint(FLAGS.generator_input, "hf"))
    pretrainer = ElectraPretrainer(config, {"cls": 101, "sep": 102, "mask": 103})  # Ids unused here.
    pretrainer.build_variables()
    # Convert what the source has: an HF discriminator has no generator, an
    # ElectraModel or BERT no discriminator head. Within a part, all must match.
    names = interop.variable_names(pretrainer)
    for part in ("generator/", "generator_predictions/", "discriminator_predictions/"):
        if not any(n.startswith(part) for n in arrays):
            names = {n: v for n, v in names.items() if not n.startswith(part)}
    interop.assign(names, arrays)
    parts = sorted({n.split("/")[0] for n in names})
    logging.info("converted %d variables (%s) from %s", len(names), ", ".join(parts), FLAGS.input)

    vocab = vocab_file()
    if FLAGS.output_format == "native":
        path = interop.write_native(FLAGS.output_dir, config, vocab, names)
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
            gen = {n: v for n, v in names.items() if n.startswith(("generator", "electra/embeddings/"))}
            interop.write_hf(gen, config, vocab, os.path.join(FLAGS.output_dir, "generator"), generator=True)
        if left_out:
            print(f"not written to Hugging Face's layout, which has no place for them (use --output_format=native "
                  f"to keep them): {', '.join(left_out)}")
    print(f"wrote {FLAGS.output_format} model ({', '.join(parts)}) to {path}")


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
