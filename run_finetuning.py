"""Fine-tunes a pre-trained ELECTRA discriminator on GLUE, SQuAD or your own labelled text.

GLUE, from the standard download (or TensorFlow Datasets with --tfds_name):

    python run_finetuning.py --task=mrpc --data_dir=glue_data --init_checkpoint=runs/pretrain_small_electra \
        --model_size=small --model_dir=runs/mrpc

Your own TSV/CSV (labels are collected from the training file):

    python run_finetuning.py --task=text_classification --train_file=train.tsv --dev_file=dev.tsv \
        --text_a_column=1 --label_column=0 --init_checkpoint=runs/pretrain_tiny_electra --model_dir=runs/mine

SQuAD 2.0 (squad) or 1.1 (squadv1), official JSON files (train.json, dev.json under --data_dir):

    python run_finetuning.py --task=squad --data_dir=squad_v2 --init_checkpoint=models/electra_small \
        --model_size=small --model_dir=runs/squad

Hyper-parameters come from the `finetuning` values of configs/<size>.json
(and configs/finetuning/tasks.json: 10 epochs for RTE and STS-B; seq 512 for SQuAD), then
--hparams, then flags. Each trial trains in <model_dir>/trial_<k> (re-running
resumes it); dev metrics of every trial and their median go to
<model_dir>/results.json.
"""

import dataclasses
import json
import os
import shutil
import statistics

from absl import app
from absl import flags
from absl import logging

import electra_tf  # noqa: F401  (first: it switches oneDNN on before TensorFlow loads)
import keras
import numpy as np
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import cli
from electra_tf import distribution
from electra_tf import finetuning
from electra_tf import metrics
from electra_tf import optimization
from electra_tf import pretraining_data
from electra_tf import squad
from electra_tf import tasks
from electra_tf import tokenization
from electra_tf import training

cli.define_config_flags()
cli.define_run_flags()
flags.DEFINE_string("task", None, f"One of {list(tasks.TASK_NAMES) + list(squad.TASKS)} (GLUE's names sst2, "
                    "stsb work too; squad is SQuAD 2.0, squadv1 SQuAD 1.1).")
flags.DEFINE_string("data_dir", None, "The GLUE download (CoLA/, SST-2/, ... or the authors' cola/, sst/, ...).")
flags.DEFINE_string("tfds_name", None, "Read the task from TensorFlow Datasets instead (e.g. glue/sst2).")
flags.DEFINE_string("tfds_data_dir", None, "TensorFlow Datasets data dir (default: TFDS's).")
flags.DEFINE_string("init_checkpoint", None, "Pre-trained weights: a run_pretraining.py model dir, an "
                    "electra_tf or Hugging Face model dir, or an authors' TF1 checkpoint. Unset: random init.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab. Unset: the init checkpoint's vocab.txt, else the "
                    "BERT uncased vocab of the released models.")
flags.DEFINE_string("model_dir", None, "Output dir. Unset: runs/finetune_<task>.")
flags.DEFINE_integer("num_trials", 1, "Fine-tune this many times with different seeds; report each and the median.")
flags.DEFINE_boolean("predict", False, "Write test-set predictions (index<TAB>prediction, GLUE's file names).")
flags.DEFINE_boolean("layerwise_lr_off_by_one", False, "Reproduce the authors' code, which gives the top layer "
                     "decay^2 instead of decay^1 (every layer one extra factor).")
flags.DEFINE_boolean("double_unordered", True, "Add MRPC and STS-B training pairs again in swapped order.")
flags.DEFINE_string("train_file", None, "text_classification/text_regression: the labelled training TSV or CSV; "
                    "squad/squadv1: a training file in SQuAD's JSON format (default: <data_dir>/train.json).")
flags.DEFINE_string("dev_file", None, "text_classification/text_regression: labelled evaluation file; "
                    "squad/squadv1: the evaluation JSON (default: <data_dir>/dev.json).")
flags.DEFINE_string("test_file", None, "text_classification/text_regression: unlabelled file for --predict.")
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
FLAGS = flags.FLAGS


def load_task():
    if FLAGS.task is None:
        raise ValueError(f"--task is required: one of {list(tasks.TASK_NAMES) + list(squad.TASKS)}")
    name = tasks.canonical_name(FLAGS.task)
    if name in tasks.GENERIC_TASKS:
        return tasks.generic_task(
            FLAGS.train_file, FLAGS.text_a_column, FLAGS.label_column, FLAGS.text_b_column, FLAGS.header,
            regression=name == "text_regression", delimiter=FLAGS.delimiter, dev_file=FLAGS.dev_file,
            test_file=FLAGS.test_file)
    try:
        task = tasks.get_task(name)
    except ValueError as e:
        raise ValueError(f"{e}, or SQuAD's {list(squad.TASKS)}") from None
    return task if FLAGS.double_unordered else dataclasses.replace(task, double_unordered=False)


def resolve_vocab():
    if FLAGS.vocab_file:
        return FLAGS.vocab_file
    if FLAGS.init_checkpoint and os.path.isfile(os.path.join(FLAGS.init_checkpoint, "vocab.txt")):
        return os.path.join(FLAGS.init_checkpoint, "vocab.txt")
    return pretraining_data.demo_vocab_file()


def read_features(task, split, tokenizer, config):
    examples = tasks.read_task_examples(task, split, FLAGS.data_dir, FLAGS.tfds_name, FLAGS.tfds_data_dir)
    features = tasks.featurize(examples, tokenizer, config.max_seq_length, task.label_ids())
    logging.info("%s %s: %d examples (%d truncated to %d tokens)", task.name, split, len(examples),
                 features["truncated"], config.max_seq_length)
    return examples, features


def metric_suffix(split):
    """MNLI's mismatched dev set reports `accuracy_mismatched`; every other split the plain names."""
    return "_mismatched" if split.endswith("_mismatched") else ""


def train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, task_info, make_dataset,
                data_files=None):
    """Compiles, initialises and trains `model` in <model_dir>/trial_<k> (resuming it); returns the Trainer.

    `data_files`: the TFRecord files `make_dataset` reads, named if one turns out corrupt.

    Returns (trainer, trial_dir, seed), or None if SIGTERM stopped the training.
    """
    trial_dir = os.path.join(model_dir, f"trial_{trial}")
    seed = config.seed + trial - 1
    with strategy.scope():
        model.build_variables()
        model.compile(optimizer=optimization.create_optimizer(
            config, total_steps=num_steps, warmup_steps=int(num_steps * config.warmup_proportion),
            lr_multipliers=finetuning.layerwise_multipliers(model, FLAGS.layerwise_lr_off_by_one)))
        model.optimizer.build(model.trainable_variables)
        if FLAGS.init_checkpoint and tf.train.latest_checkpoint(trial_dir) is None:
            finetuning.load_pretrained(model, FLAGS.init_checkpoint)
    # The trial dir is also an electra_tf model dir (config, vocab, checkpoints by the authors' names).
    checkpoint_interop.write_model_files(trial_dir, config, vocab_file)
    tasks.write_task_file(trial_dir, task_info)
    trainer = training.Trainer(model, strategy, trial_dir, cli.jit_compile(FLAGS), keep_checkpoint_max=1,
                               guard=model.guard, skip_nonfinite=FLAGS.skip_nonfinite,
                               weights=model.variable_names())
    trained = trainer.train(
        lambda context, start_step: make_dataset(config.train_batch_size, seed, context, start_step),
        num_steps, config.steps_per_loop, config.save_checkpoints_steps,
        tokens_per_step=config.train_batch_size * config.max_seq_length, data_files=data_files,
        input_log=cli.input_log(FLAGS, trial_dir))
    if trained["preempted"]:
        return None
    return trainer, trial_dir, {"trial": trial, "seed": seed, "steps": trained["steps"]}


def run_trial(trial, task, config, strategy, data, num_steps, vocab_file, model_dir):
    keras.utils.set_random_seed(config.seed + trial - 1)
    with strategy.scope():
        model = finetuning.ElectraClassifier(config, task.num_outputs, task.name, task.is_regression)
    train_features = data["train"][1]
    trained = train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, tasks.task_info(task),
                          lambda batch, seed, context, start_step: finetuning.train_dataset(
                              train_features, batch, seed, context, start_step))
    if trained is None:
        return None
    trainer, trial_dir, result = trained
    for split in task.eval_splits + (task.test_splits if FLAGS.predict else []):
        if split not in data:
            continue
        examples, features = data[split]
        dataset, n = finetuning.eval_dataset(features, config.eval_batch_size)
        outputs = trainer.predict(dataset)[:n]
        predictions = outputs if task.is_regression else outputs.argmax(-1)
        if split.startswith("test"):
            write_predictions(task, split, examples, predictions, trial_dir)
            continue
        scores = metrics.task_metrics(task.metrics, predictions, features["label_ids"])
        result.update({name + metric_suffix(split): value for name, value in scores.items()})
    return finish_trial(result, trial_dir)


def finish_trial(result, trial_dir):
    with open(os.path.join(trial_dir, "eval_results.json"), "w") as f:
        json.dump(result, f, indent=2)
    logging.info("trial %d: %s", result["trial"], result)
    return result


def write_predictions(task, split, examples, predictions, output_dir):
    file_name = dict(task.submission_names).get(split, f"{task.name}_{split}.tsv")
    path = os.path.join(output_dir, file_name)
    with open(path, "w") as f:
        f.write("index\tprediction\n")
        for example, label in zip(examples, tasks.label_names(task, predictions)):
            f.write(f"{example.index}\t{label}\n")
    logging.info("wrote %d %s predictions to %s", len(examples), split, path)


def squad_trials(name, config, strategy, tokenizer, vocab_file, model_dir):
    """Reads and featurises SQuAD once; returns (number of steps, a function that runs one trial)."""
    version_2 = squad.TASKS[name]
    if not (FLAGS.data_dir or (FLAGS.train_file and FLAGS.dev_file)):
        raise ValueError(f"--task={name} needs --data_dir (with train.json and dev.json) or --train_file and --dev_file")
    train_file = FLAGS.train_file or os.path.join(FLAGS.data_dir, "train.json")
    dev_file = FLAGS.dev_file or os.path.join(FLAGS.data_dir, "dev.json")
    shape = (config.max_seq_length, config.doc_stride, config.max_query_length)
    train_examples, mismatched = squad.read_squad(train_file, version_2)
    if mismatched:
        logging.warning("%s: %d of %d answers are not at their answer_start (first: question %s); those questions "
                        "are left out of training", train_file, len(mismatched), len(train_examples), mismatched[0])
    train_path = os.path.join(model_dir, "train_features.tfrecord")
    num_features = squad.write_train_features(
        squad.featurize(train_examples, tokenizer, *shape, training=True, version_2=version_2), train_path)
    dev_examples, _ = squad.read_squad(dev_file, version_2)
    dev = list(squad.featurize(dev_examples, tokenizer, *shape, training=False))
    windows = [w for _, w in dev]
    dev_features = {k: np.stack([f[k] for f, _ in dev]) for k in ("input_ids", "input_mask", "segment_ids")}
    logging.info("%s: %d training questions -> %d windows (%d answers not at their offset left out); %d dev "
                 "questions -> %d windows", name, len(train_examples), num_features, len(mismatched),
                 len(dev_examples), len(windows))
    num_steps = training_steps(name, num_features, "training windows", config)
    answerable = version_2 and FLAGS.answerable_classifier
    info = {"task": name, "kind": "squad", "version_2": version_2, "joint": FLAGS.joint_prediction,
            "answerable": answerable}

    def run(trial):
        keras.utils.set_random_seed(config.seed + trial - 1)
        with strategy.scope():
            model = finetuning.ElectraQuestionAnswering(config, name, FLAGS.joint_prediction, answerable)
        trained = train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, info,
                              lambda batch, seed, context, start_step: squad.train_dataset(
                                  train_path, config.max_seq_length, batch, seed, context, start_step, num_features),
                              data_files=[train_path])
        if trained is None:
            return None
        trainer, trial_dir, result = trained
        dataset, n = finetuning.eval_dataset(dev_features, config.eval_batch_size)
        outputs = {k: v[:n] for k, v in trainer.predict(dataset).items()}
        predictions, null_odds = squad.predict_answers(dev_examples, windows, outputs, config.n_best_size,
                                                       config.max_answer_length, version_2)
        if version_2:  # The no-answer threshold is tuned on dev, as the authors did.
            raw = squad.evaluate(dev_examples, predictions, True, null_odds)
            predictions = squad.apply_threshold(predictions, null_odds, raw["best_f1_thresh"])
            result.update(squad.evaluate(dev_examples, predictions, True), best_threshold=raw["best_f1_thresh"],
                          best_exact=raw["best_exact"], best_f1=raw["best_f1"])
            write_json(null_odds, os.path.join(trial_dir, "null_odds.json"))
        else:
            result.update(squad.evaluate(dev_examples, predictions, False))
        write_json(predictions, os.path.join(trial_dir, "predictions.json"))
        return finish_trial(result, trial_dir)

    return num_steps, run


def classification_trials(task, config, strategy, tokenizer, vocab_file, model_dir):
    """Reads and featurises the task once; returns (number of steps, a function that runs one trial)."""
    splits = ["train"] + task.eval_splits + (task.test_splits if FLAGS.predict else [])
    data = {}
    for split in splits:
        if split != "train" and task.name in tasks.GENERIC_TASKS and split not in dict(task.splits):
            continue  # The user's dev and test files are optional.
        data[split] = read_features(task, split, tokenizer, config)
    num_steps = training_steps(task.name, len(data["train"][0]), "training examples", config)
    return num_steps, lambda trial: run_trial(trial, task, config, strategy, data, num_steps, vocab_file, model_dir)


def training_steps(name, count, what, config):
    """Steps of `num_train_epochs` over `count` training items, or an error if they make no full batch."""
    num_steps = int(count * config.num_train_epochs / config.train_batch_size)
    if num_steps < 1:
        raise ValueError(f"{name}: {count} {what} x {config.num_train_epochs} epochs make no full batch of "
                         f"{config.train_batch_size}")
    return num_steps


def write_json(value, path):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def main(argv):
    del argv
    qa = FLAGS.task is not None and FLAGS.task.lower() in squad.TASKS
    task = None if qa else load_task()
    name = FLAGS.task.lower() if qa else task.name
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
    model_dir = FLAGS.model_dir or os.path.join("runs", f"finetune_{name}")
    os.makedirs(model_dir, exist_ok=True)
    vocab_file = resolve_vocab()
    tokenizer = tokenization.WordPieceTokenizer.for_config(vocab_file, config)
    if qa:
        _, run = squad_trials(name, config, strategy, tokenizer, vocab_file, model_dir)
    else:
        _, run = classification_trials(task, config, strategy, tokenizer, vocab_file, model_dir)

    trials = []
    for trial in range(1, FLAGS.num_trials + 1):
        result = run(trial)
        if result is None:
            logging.warning("SIGTERM: trial %d checkpointed; run the same command again to resume", trial)
            return
        trials.append(result)
    scores = sorted({k for t in trials for k in t} - {"trial", "seed", "steps"})
    summary = {"task": name, "model_size": FLAGS.model_size, "init_checkpoint": FLAGS.init_checkpoint,
               "num_trials": len(trials), "trials": trials,
               "median": {k: statistics.median(t[k] for t in trials) for k in scores}}
    summary.update(summary["median"])
    write_json(summary, os.path.join(model_dir, "results.json"))
    if qa:  # The official files of the trial with the median F1 (the first such trial).
        median_trial = sorted(trials, key=lambda t: t["f1"])[(len(trials) - 1) // 2]["trial"]
        for file_name in ("predictions.json", "null_odds.json"):
            source = os.path.join(model_dir, f"trial_{median_trial}", file_name)
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(model_dir, file_name))
    logging.info("results: %s", json.dumps(summary["median"]))
    print(json.dumps({"task": name, **summary["median"]}))


if __name__ == "__main__":
    app.run(main)
