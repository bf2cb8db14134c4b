"""Exports an electra_tf model as a SavedModel that TF Serving loads and that takes raw text.

A pre-trained discriminator (text -> tokens and per-token probability of being replaced):

    python export_model.py --model_dir=runs/pretrain_tiny_electra --export_dir=exports --kind=discriminator

A fine-tuned classifier or regressor (text, or text + text_pair -> probabilities and label names, or score):

    python export_model.py --model_dir=runs/finetune_sst/trial_1 --export_dir=exports --kind=classifier

A fine-tuned SQuAD model (question + context -> answer text, character offsets, score):

    python export_model.py --model_dir=runs/finetune_squad/trial_1 --export_dir=exports --kind=squad

A fine-tuned tagger (text -> words, BERT's basic split, with their tags and scores):

    python export_model.py --model_dir=runs/finetune_chunk/trial_1 --export_dir=exports --kind=tagger

An Electric pre-training run (text -> the sentence's pseudo-log-likelihood, for re-ranking candidates):

    python export_model.py --model_dir=runs/electric --export_dir=exports --kind=electric_scorer

Then serve with `tensorflow_model_server --rest_api_port=8501 --model_name=electra_classifier
--model_base_path=$PWD/exports/electra_classifier` (see docs/serving.md). The export is loaded back and
answers --sample_text (in TF Serving's REST format) before the script ends.
"""

import json
import sys

from absl import flags

import tensorflow as tf

from electra_tf import commands
from electra_tf import export

flags.DEFINE_string("model_dir", None, "electra_tf model dir: a run_pretraining.py model dir or a "
                    "convert_checkpoint.py output (discriminator), an objective=electric run_pretraining.py model "
                    "dir (electric_scorer), a run_finetuning.py trial dir (classifier, squad, tagger).")
flags.DEFINE_string("export_dir", None, "TF Serving's base: the model goes to <export_dir>/<model_name>/<version>.")
flags.DEFINE_enum("kind", "discriminator", export.KINDS, "What the served model answers.")
flags.DEFINE_string("model_name", None, "Model name (TF Serving's --model_name). Default: electra_<kind>.")
flags.DEFINE_integer("version", None, "Version number. Default: one above the highest already exported.")
flags.DEFINE_integer("max_seq_length", None, "Tokens per input, specials included (default: the model's config).")
flags.DEFINE_string("sample_text", "The chef cooked the meal.", "Text the export answers as a check; for pair "
                    "models 'text ||| text_pair', for SQuAD models 'question ||| context'.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
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


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
