"""Fine-tunes a pre-trained ELECTRA discriminator on GLUE, SQuAD, token tagging or your own labelled text.

GLUE, from the standard download (or TensorFlow Datasets with --tfds_name):

    python run_finetuning.py --task=mrpc --data_dir=glue_data --init_checkpoint=runs/pretrain_small_electra \
        --model_size=small --model_dir=runs/mrpc

Your own TSV/CSV (labels are collected from the training file):

    python run_finetuning.py --task=text_classification --train_file=train.tsv --dev_file=dev.tsv \
        --text_a_column=1 --label_column=0 --init_checkpoint=runs/pretrain_tiny_electra --model_dir=runs/mine

SQuAD 2.0 (squad) or 1.1 (squadv1), official JSON files (train.json, dev.json under --data_dir):

    python run_finetuning.py --task=squad --data_dir=squad_v2 --init_checkpoint=models/electra_small \
        --model_size=small --model_dir=runs/squad

An MRQA shared-task set (mrqa, or the authors' newsqa, naturalqs, triviaqa, searchqa), JSON lines as shipped
(train.jsonl[.gz], dev.jsonl[.gz] under --data_dir, or any two files):

    python run_finetuning.py --task=newsqa --train_file=train/NewsQA.jsonl.gz --dev_file=dev/NewsQA.jsonl.gz \
        --init_checkpoint=models/electra_small --model_size=small --model_dir=runs/newsqa

Token tagging (part of speech, chunks, named entities) from CoNLL column files (word in --word_column,
tag in --tag_column; span tags are scored by entity-level F1, other tags by accuracy):

    python run_finetuning.py --task=tagging --train_file=data/wsj_pos/train.txt --dev_file=data/wsj_pos/dev.txt \
        --init_checkpoint=models/electra_small --model_size=small --model_dir=runs/pos

The named presets read the standard files under --data_dir: chunk (CoNLL-2000: chunk/{train,dev,test}.txt)
and ner (CoNLL-2003: eng.train/eng.testa/eng.testb or train.txt/valid.txt/test.txt, under ner/ or not):

    python run_finetuning.py --task=ner --data_dir=conll2003 --init_checkpoint=models/electra_small \
        --model_size=small --model_dir=runs/ner

Hyper-parameters come from the `finetuning` values of configs/<size>.json
(and configs/finetuning/tasks.json: 10 epochs for RTE and STS-B; seq 512 for SQuAD and MRQA; seq 256 for
chunk and ner), then
--hparams, then flags. Each trial trains in <model_dir>/trial_<k> (re-running
resumes it); dev metrics of every trial and their median go to
<model_dir>/results.json.
"""

import dataclasses
import json
import os
import sys

from absl import flags
from absl import logging

from electra_tf import checkpoint_interop
from electra_tf import cli
from electra_tf import commands
from electra_tf import distribution
from electra_tf import pretraining_data
from electra_tf import squad
from electra_tf import tagging
from electra_tf import tasks
from electra_tf import tokenization
from electra_tf import trials

cli.define_config_flags()
cli.define_run_flags()
flags.DEFINE_string("task", None, f"One of {list(tasks.TASK_NAMES) + list(squad.TASKS) + list(tagging.TASK_NAMES)} "
                    "(GLUE's names sst2, stsb work too; squad is SQuAD 2.0, squadv1 SQuAD 1.1, mrqa and newsqa... "
                    "MRQA sets; tagging reads --train_file/--dev_file in CoNLL columns, chunk and ner their standard "
                    "files in --data_dir).")
flags.DEFINE_string("data_dir", None, "The task's files: the GLUE download (CoLA/, SST-2/, ... or the authors' "
                    "cola/, sst/, ...); SQuAD's train.json and dev.json; an MRQA set's train.jsonl[.gz] and "
                    "dev.jsonl[.gz]; CoNLL-2000 (chunk/) or CoNLL-2003 files (ner).")
flags.DEFINE_string("tfds_name", None, "Read the task from TensorFlow Datasets instead (e.g. glue/sst2).")
flags.DEFINE_string("tfds_data_dir", None, "TensorFlow Datasets data dir (default: TFDS's).")
flags.DEFINE_string("init_checkpoint", None, "Pre-trained weights: a run_pretraining.py model dir or one of "
                    "its checkpoints (<model_dir>/ckpt-400), an electra_tf or Hugging Face model dir, a keras-hub "
                    "ElectraBackbone preset dir, or an authors' TF1 checkpoint. A fine-tuned model of the same task "
                    "(a trial dir, or a Hugging Face ElectraFor* task dir of the task's kind) brings its head too. "
                    "Unset: random init.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab. Unset: the init checkpoint's vocab.txt (a keras-hub "
                    "preset's vocabulary.txt), else the BERT uncased vocab of the released models.")
flags.DEFINE_string("model_dir", None, "Output dir. Unset: runs/finetune_<task>.")
flags.DEFINE_integer("num_trials", 1, "Fine-tune this many times with different seeds; report each and the median.")
flags.DEFINE_boolean("predict", False, "Write test-set predictions (index<TAB>prediction, GLUE's file names; "
                     "tagging: test_predictions.txt, `word predicted-tag` a line).")
flags.DEFINE_boolean("layerwise_lr_off_by_one", False, "Reproduce the authors' code, which gives the top layer "
                     "decay^2 instead of decay^1 (every layer one extra factor).")
flags.DEFINE_boolean("double_unordered", True, "Add MRPC and STS-B training pairs again in swapped order.")
flags.DEFINE_string("train_file", None, "text_classification/text_regression: the labelled training TSV or CSV; "
                    "squad/squadv1: a training file in SQuAD's JSON format (default: <data_dir>/train.json); MRQA "
                    "sets: JSON lines, .jsonl or .jsonl.gz (default: <data_dir>/train.jsonl[.gz]); tagging: the "
                    "tagged CoNLL column file (its tags are the task's).")
flags.DEFINE_string("dev_file", None, "text_classification/text_regression: labelled evaluation file; "
                    "squad/squadv1, MRQA sets: the evaluation file (default: <data_dir>/dev.json, dev.jsonl[.gz]); "
                    "tagging: a tagged CoNLL file.")
flags.DEFINE_string("test_file", None, "text_classification/text_regression: unlabelled file for --predict; "
                    "tagging: a CoNLL file for --predict (tags optional).")
flags.DEFINE_string("text_a_column", "0", "Column of the text: an index (0-based, negative from the end) "
                    "or, with --header, a name.")
flags.DEFINE_string("text_b_column", None, "Column of the second text of a pair, if any.")
flags.DEFINE_string("label_column", "1", "Column of the label or numeric target.")
flags.DEFINE_boolean("header", False, "The files' first line is a header.")
flags.DEFINE_string("delimiter", None, "Field delimiter (default: ',' for .csv, tab otherwise).")
flags.DEFINE_boolean("joint_prediction", False, "squad/squadv1: the authors' head, predicting the end conditioned "
                     "on the start (beam of qa_beam_size starts).")
flags.DEFINE_boolean("answerable_classifier", True, "squad: add the no-answer classifier on [CLS] "
                     "(loss weight answerable_weight).")
flags.DEFINE_integer("word_column", 0, "tagging, chunk, ner: column of the word (negative from the end).")
flags.DEFINE_integer("tag_column", -1, "tagging, chunk, ner: column of the tag (negative from the end).")
flags.DEFINE_enum("tag_scheme", "auto", tagging.SCHEMES, "tagging, chunk, ner: iob1, iob2 or bioes (span tags, "
                  "entity-level F1) or token (accuracy only); auto detects it from the training file.")
FLAGS = flags.FLAGS


def load_task():
    if FLAGS.task is None:
        raise ValueError(f"--task is required: one of "
                         f"{list(tasks.TASK_NAMES) + list(squad.TASKS) + list(tagging.TASK_NAMES)}")
    name = tasks.canonical_name(FLAGS.task)
    if name in tasks.GENERIC_TASKS:
        return tasks.generic_task(
            FLAGS.train_file, FLAGS.text_a_column, FLAGS.label_column, FLAGS.text_b_column, FLAGS.header,
            regression=name == "text_regression", delimiter=FLAGS.delimiter, dev_file=FLAGS.dev_file,
            test_file=FLAGS.test_file)
    try:
        task = tasks.get_task(name)
    except ValueError as e:
        raise ValueError(f"{e}, or SQuAD's and MRQA's {list(squad.TASKS)}, or tagging's {list(tagging.TASK_NAMES)}") \
            from None
    return task if FLAGS.double_unordered else dataclasses.replace(task, double_unordered=False)


def load_tagging(name):
    """The tagging task's sentences: --train_file/--dev_file/--test_file, or a preset's files in --data_dir."""
    if name == "tagging":
        if not (FLAGS.train_file and FLAGS.dev_file):
            raise ValueError("--task=tagging needs --train_file and --dev_file (CoNLL column files)")
        paths = {"train": FLAGS.train_file, "dev": FLAGS.dev_file, "test": FLAGS.test_file}
        tasks.check_files({f"--{split}_file": path for split, path in paths.items()})
    elif not FLAGS.data_dir:
        raise ValueError(f"--task={name} needs --data_dir (the folder of its CoNLL files)")
    else:
        paths = tagging.preset_files(name, FLAGS.data_dir)
    if FLAGS.predict and not paths["test"]:
        raise ValueError(f"--task={name} --predict needs a test file (--test_file, or the preset's test file)")
    return tagging.read_task(name, paths, FLAGS.word_column, FLAGS.tag_column, FLAGS.tag_scheme)


def resolve_vocab():
    if FLAGS.vocab_file:
        return FLAGS.vocab_file
    shipped = FLAGS.init_checkpoint and checkpoint_interop.vocab_file_of(FLAGS.init_checkpoint)
    return shipped or pretraining_data.demo_vocab_file()


def read_features(task, split, tokenizer, config):
    examples = tasks.read_task_examples(task, split, FLAGS.data_dir, FLAGS.tfds_name, FLAGS.tfds_data_dir)
    features = tasks.featurize(examples, tokenizer, config.max_seq_length, task.label_ids())
    logging.info("%s %s: %d examples (%d truncated to %d tokens)", task.name, split, len(examples),
                 features["truncated"], config.max_seq_length)
    return examples, features


def read_data(task, config, tokenizer):
    """{split: (examples, features)}: train, the dev splits, and with --predict the test splits."""
    data = {}
    for split in ["train"] + task.eval_splits + (task.test_splits if FLAGS.predict else []):
        if split != "train" and task.name in tasks.GENERIC_TASKS and split not in dict(task.splits):
            continue  # The user's dev and test files are optional.
        data[split] = read_features(task, split, tokenizer, config)
    return data


def main(argv):
    del argv
    qa = FLAGS.task is not None and FLAGS.task.lower() in squad.TASKS
    tagger = FLAGS.task is not None and FLAGS.task.lower() in tagging.TASK_NAMES
    task = None if qa or tagger else load_task()
    name = task.name if task else FLAGS.task.lower()
    config = cli.load_config(FLAGS, task=name)
    cli.set_determinism(FLAGS)
    cli.set_precision(FLAGS)
    strategy = cli.get_strategy(FLAGS)
    distribution.describe(strategy, config.train_batch_size)
    if config.gradient_accumulation_steps != 1:
        raise ValueError("--gradient_accumulation_steps is not supported by fine-tuning; lower "
                         "--train_batch_size or use more replicas")
    if FLAGS.num_trials < 1:
        raise ValueError(f"--num_trials must be positive, got {FLAGS.num_trials}")
    vocab_file = resolve_vocab()
    tokenizer = tokenization.WordPieceTokenizer.for_config(vocab_file, config)
    options = trials.TrialOptions(
        init_checkpoint=FLAGS.init_checkpoint, layerwise_lr_off_by_one=FLAGS.layerwise_lr_off_by_one,
        jit_compile=cli.jit_compile(FLAGS), skip_nonfinite=FLAGS.skip_nonfinite,
        input_fingerprints=FLAGS.input_fingerprints, predict=FLAGS.predict)
    # The inputs are found (and the classification and tagging files read) before the run directory is made,
    # so a wrong path leaves nothing behind.
    if qa:
        if not (FLAGS.data_dir or (FLAGS.train_file and FLAGS.dev_file)):
            raise ValueError(f"--task={name} needs --data_dir (with its train and dev files) or --train_file and "
                             "--dev_file")
        train_file = FLAGS.train_file or squad.data_file(name, FLAGS.data_dir, "train")
        dev_file = FLAGS.dev_file or squad.data_file(name, FLAGS.data_dir, "dev")
    else:
        data = load_tagging(name) if tagger else read_data(task, config, tokenizer)
    model_dir = FLAGS.model_dir or os.path.join("runs", f"finetune_{name}")
    os.makedirs(model_dir, exist_ok=True)
    if qa:
        _, run = trials.squad_trials(name, config, strategy, tokenizer, vocab_file, model_dir, options, train_file,
                                     dev_file, FLAGS.joint_prediction, FLAGS.answerable_classifier)
    elif tagger:
        _, run = trials.tagging_trials(data, config, strategy, tokenizer, vocab_file, model_dir, options)
    else:
        _, run = trials.classification_trials(task, data, config, strategy, vocab_file, model_dir, options)
    summary = trials.run_all(run, FLAGS.num_trials, model_dir, name, FLAGS.model_size, options, qa=qa)
    if summary is None:
        return
    logging.info("results: %s", json.dumps(summary["median"]))
    print(json.dumps({"task": name, **summary["median"]}))


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
