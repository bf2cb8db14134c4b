"""Exports an electra_tf model as a SavedModel that TF Serving loads and that takes raw text.

A pre-trained discriminator (text -> tokens and per-token probability of being replaced):

    python export_model.py --model_dir=runs/pretrain_tiny_electra --export_dir=exports --kind=discriminator

A fine-tuned classifier or regressor (text, or text + text_pair -> probabilities and label names, or score):

    python export_model.py --model_dir=runs/finetune_sst/trial_1 --export_dir=exports --kind=classifier

A fine-tuned SQuAD model (question + context -> answer text, character offsets, score):

    python export_model.py --model_dir=runs/finetune_squad/trial_1 --export_dir=exports --kind=squad

A fine-tuned tagger (text -> words, BERT's basic split, with their tags and scores):

    python export_model.py --model_dir=runs/finetune_chunk/trial_1 --export_dir=exports --kind=tagger

A TFLite model for devices (raw text in, with tf-text's custom ops; and a token-id model with built-in ops
only), optionally with int8 weights:

    python export_model.py --model_dir=runs/finetune_sst/trial_1 --export_dir=exports --kind=classifier \
        --format=tflite --quantize=dynamic_int8

An Electric pre-training run (text -> the sentence's pseudo-log-likelihood, for re-ranking candidates):

    python export_model.py --model_dir=runs/electric --export_dir=exports --kind=electric_scorer

Then serve with `tensorflow_model_server --rest_api_port=8501 --model_name=electra_classifier
--model_base_path=$PWD/exports/electra_classifier` (see docs/serving.md). The export is loaded back and
answers --sample_text (in TF Serving's REST format; a TFLite export: its text.tflite) before the script ends.
"""

import json
import os
import sys

from absl import flags

import numpy as np
import tensorflow as tf

from electra_tf import commands
from electra_tf import export
from electra_tf import tflite

flags.DEFINE_string("model_dir", None, "electra_tf model dir: a run_pretraining.py model dir or a "
                    "convert_checkpoint.py output (discriminator), an objective=electric run_pretraining.py model "
                    "dir (electric_scorer), a run_finetuning.py trial dir (classifier, squad, tagger).")
flags.DEFINE_string("export_dir", None, "TF Serving's base: the model goes to <export_dir>/<model_name>/<version> "
                    "(--format=tflite: to <export_dir>/<model_name>/).")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "saved_model: for TF Serving; tflite: "
                  "text.tflite (raw text, tf-text custom ops) and ids.tflite (token ids, built-in ops) for devices.")
flags.DEFINE_enum("quantize", "none", tflite.QUANTIZATIONS, "--format=tflite only: dynamic_int8 stores the weights "
                  "in int8 (about a quarter of the size).")
flags.DEFINE_enum("kind", "discriminator", export.KINDS, "What the served model answers.")
flags.DEFINE_string("model_name", None, "Model name (TF Serving's --model_name). Default: electra_<kind>; "
                    "--format=tflite: electra_<kind>_tflite[_int8].")
flags.DEFINE_integer("version", None, "Version number (SavedModel only). Default: one above the highest already "
                     "exported.")
flags.DEFINE_integer("max_seq_length", None, "Tokens per input, specials included (default: the model's config).")
flags.DEFINE_string("sample_text", "The chef cooked the meal.", "Text the export answers as a check; for pair "
                    "models 'text ||| text_pair', for SQuAD models 'question ||| context'.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.format == "tflite":
        return _export_tflite()
    if FLAGS.quantize != "none":
        raise ValueError(f"--quantize={FLAGS.quantize} needs --format=tflite")
    path = export.export_model(FLAGS.model_dir, FLAGS.export_dir, FLAGS.kind, FLAGS.model_name, FLAGS.version,
                               FLAGS.max_seq_length)
    loaded = tf.saved_model.load(path)
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    names = [name for name in ("text", "text_pair", "question", "context") if name in inputs]
    texts = FLAGS.sample_text.split(" ||| ", 1) if len(names) == 2 else [FLAGS.sample_text]
    request = {"instances": [dict(zip(names, texts + [""] * (len(names) - len(texts))))]}
    print(f"exported {FLAGS.kind} to {path}")
    print("request: " + json.dumps(request))
    print("response: " + json.dumps(export.rest_predict(loaded, request)))


def _export_tflite():
    if FLAGS.version is not None:
        raise ValueError("--version is for --format=saved_model (TF Serving's versions)")
    paths = tflite.export_tflite(FLAGS.model_dir, FLAGS.export_dir, FLAGS.kind, FLAGS.model_name,
                                 FLAGS.max_seq_length, FLAGS.quantize)
    runner = tflite.load_interpreter(paths["text"]).get_signature_runner()
    with open(os.path.join(paths["dir"], "export.json")) as f:
        names = json.load(f)["text_inputs"]
    texts = FLAGS.sample_text.split(" ||| ", 1) if len(names) == 2 else [FLAGS.sample_text]
    texts += [""] * (len(names) - len(texts))
    outputs = runner(**{name: np.array([text]) for name, text in zip(names, texts)})
    print(f"exported {FLAGS.kind} to {paths['text']} and {paths['ids']}")
    print("input: " + json.dumps(dict(zip(names, texts))))
    print("output: " + json.dumps({name: export._to_json(value) for name, value in outputs.items()}))


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
