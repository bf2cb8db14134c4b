"""Fine-tuning trials: train, score and summarise a task several times, as the authors report.

Fine-tuning results vary with the seed (the authors report the median of 10
runs), so a task is fine-tuned `num_trials` times, trial k with seed
`config.seed + k - 1`, each in `<model_dir>/trial_<k>` (a resumable run and an
electra_tf model dir). Data are read and featurised once; `classification_trials`,
`squad_trials` and `tagging_trials` return the number of steps and a function that runs one trial.

Example:
```python
options = TrialOptions(init_checkpoint="runs/pretrain_tiny_electra")
_, run = classification_trials(task, data, config, strategy, vocab_file, "runs/mine", options)
summary = run_all(run, 3, "runs/mine", "mine", "tiny", options)  # None if a SIGTERM stopped a trial
```
"""

import dataclasses
import json
import os
import shutil
import statistics
from typing import Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import finetuning
from electra_tf import metrics
from electra_tf import optimization
from electra_tf import squad
from electra_tf import tagging
from electra_tf import tasks
from electra_tf import training


@dataclasses.dataclass(frozen=True)
class TrialOptions:
    """How trials run, beyond the config's hyper-parameters (run_finetuning.py's flags of the same names).

    Args:
      init_checkpoint: pre-trained weights (any format `checkpoint_interop` reads), with the task head when it
        holds this task's (`finetuning.load_pretrained`); None: random init.
      layerwise_lr_off_by_one: the authors' layer-wise decay, whose top layer gets decay^2.
      jit_compile: XLA-compile the steps.
      skip_nonfinite: skip a step whose loss or gradients are not finite instead of stopping.
      input_fingerprints: log each step's input checksum to `<trial_dir>/input_fingerprints.tsv`.
      predict: also write test-set predictions.
    """

    init_checkpoint: Optional[str] = None
    layerwise_lr_off_by_one: bool = False
    jit_compile: bool = False
    skip_nonfinite: bool = False
    input_fingerprints: bool = False
    predict: bool = False


def training_steps(name, count, what, config):
    """Steps of `num_train_epochs` over `count` training items, or an error if they make no full batch."""
    num_steps = int(count * config.num_train_epochs / config.train_batch_size)
    if num_steps < 1:
        raise ValueError(f"{name}: {count} {what} x {config.num_train_epochs} epochs make no full batch of "
                         f"{config.train_batch_size}")
    return num_steps


def train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, task_info, make_dataset, options,
                data_files=None):
    """Compiles, initialises and trains `model` in <model_dir>/trial_<k>, resuming it.

    Args:
      make_dataset: `(global batch, seed, input context, start step) -> dataset`.
      data_files: the TFRecord files `make_dataset` reads, named if one turns out corrupt.

    Returns:
      (trainer, trial_dir, {"trial", "seed", "steps"}), or None if SIGTERM stopped the training.
    """
    trial_dir = os.path.join(model_dir, f"trial_{trial}")
    seed = config.seed + trial - 1
    with strategy.scope():
        model.build_variables()
        model.compile(optimizer=optimization.create_optimizer(
            config, total_steps=num_steps, warmup_steps=int(num_steps * config.warmup_proportion),
            lr_multipliers=finetuning.layerwise_multipliers(model, options.layerwise_lr_off_by_one)))
        model.optimizer.build(model.trainable_variables)
        if options.init_checkpoint and tf.train.latest_checkpoint(trial_dir) is None:
            finetuning.load_pretrained(model, options.init_checkpoint, task_info.get("labels"))
    # The trial dir is also an electra_tf model dir (config, vocab, checkpoints by the authors' names).
    checkpoint_interop.write_model_files(trial_dir, config, vocab_file)
    tasks.write_task_file(trial_dir, task_info)
    trainer = training.Trainer(model, strategy, trial_dir, options.jit_compile, keep_checkpoint_max=1,
                               guard=model.guard, skip_nonfinite=options.skip_nonfinite,
                               weights=model.variable_names())
    trained = trainer.train(
        lambda context, start_step: make_dataset(config.train_batch_size, seed, context, start_step),
        num_steps, config.steps_per_loop, config.save_checkpoints_steps,
        tokens_per_step=config.train_batch_size * config.max_seq_length, data_files=data_files,
        input_log=os.path.join(trial_dir, "input_fingerprints.tsv") if options.input_fingerprints else None)
    if trained["preempted"]:
        return None
    return trainer, trial_dir, {"trial": trial, "seed": seed, "steps": trained["steps"]}


def classification_trials(task, data, config, strategy, vocab_file, model_dir, options):
    """Returns (number of steps, a function that runs one trial) of a GLUE or generic task.

    Args:
      data: {split: (examples, features)} with "train", the dev splits to score
        and (with `options.predict`) the test splits.
    """
    num_steps = training_steps(task.name, len(data["train"][0]), "training examples", config)

    def run(trial):
        keras.utils.set_random_seed(config.seed + trial - 1)
        with strategy.scope():
            model = finetuning.ElectraClassifier(config, task.num_outputs, task.name, task.is_regression)
        train_features = data["train"][1]
        trained = train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, tasks.task_info(task),
                              lambda batch, seed, context, start_step: finetuning.train_dataset(
                                  train_features, batch, seed, context, start_step), options)
        if trained is None:
            return None
        trainer, trial_dir, result = trained
        for split in task.eval_splits + (task.test_splits if options.predict else []):
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
            # MNLI's mismatched dev set reports `accuracy_mismatched`; every other split the plain names.
            suffix = "_mismatched" if split.endswith("_mismatched") else ""
            result.update({name + suffix: value for name, value in scores.items()})
        return _finish(result, trial_dir)

    return num_steps, run


def squad_trials(name, config, strategy, tokenizer, vocab_file, model_dir, options, train_file, dev_file,
                 joint_prediction=False, answerable_classifier=True):
    """Reads and featurises SQuAD or an MRQA set once; returns (number of steps, a function that runs one trial).

    Args:
      name: `squad` (2.0), `squadv1`, or one of `squad.MRQA_TASKS` (scored as 1.1).
      train_file, dev_file: the official JSON (SQuAD) or JSON-lines (MRQA) files.
      joint_prediction: the authors' head (end conditioned on the start, beam search).
      answerable_classifier: SQuAD 2.0's no-answer classifier on [CLS].
    """
    version_2 = squad.TASKS[name]
    shape = (config.max_seq_length, config.doc_stride, config.max_query_length)
    train_examples, mismatched = squad.read_examples(name, train_file)
    if mismatched:
        logging.warning("%s: %d of %d answers are not at their answer_start or char span (first: question %s); "
                        "those questions are left out of training", train_file, len(mismatched), len(train_examples),
                        mismatched[0])
    train_path = os.path.join(model_dir, "train_features.tfrecord")
    num_features = squad.write_train_features(
        squad.featurize(train_examples, tokenizer, *shape, training=True, version_2=version_2), train_path)
    dev_examples, _ = squad.read_examples(name, dev_file)
    dev = list(squad.featurize(dev_examples, tokenizer, *shape, training=False))
    windows = [w for _, w in dev]
    dev_features = {k: np.stack([f[k] for f, _ in dev]) for k in ("input_ids", "input_mask", "segment_ids")}
    logging.info("%s: %d training questions -> %d windows (%d answers not at their offset left out); %d dev "
                 "questions -> %d windows", name, len(train_examples), num_features, len(mismatched),
                 len(dev_examples), len(windows))
    num_steps = training_steps(name, num_features, "training windows", config)
    answerable = version_2 and answerable_classifier
    info = {"task": name, "kind": "squad", "version_2": version_2, "joint": joint_prediction,
            "answerable": answerable}

    def run(trial):
        keras.utils.set_random_seed(config.seed + trial - 1)
        with strategy.scope():
            model = finetuning.ElectraQuestionAnswering(config, name, joint_prediction, answerable)
        trained = train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, info,
                              lambda batch, seed, context, start_step: squad.train_dataset(
                                  train_path, config.max_seq_length, batch, seed, context, start_step, num_features),
                              options, data_files=[train_path])
        if trained is None:
            return None
        trainer, trial_dir, result = trained
        result["train_mismatched"] = len(mismatched)  # Beside the scores, so a user sees the data left out.
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
        return _finish(result, trial_dir)

    return num_steps, run


def tagging_trials(data, config, strategy, tokenizer, vocab_file, model_dir, options):
    """Featurises a tagging task once; returns (number of steps, a function that runs one trial).

    Each trial reports token accuracy (and for span tags entity-level
    precision, recall, F1 and `f1_<type>`) on dev, the number of sentences
    split into windows (`train_sentences_split`, `dev_sentences_split`), and
    writes `dev_predictions.txt` (`word gold predicted`, conlleval's input)
    and, with `options.predict`, `test_predictions.txt` (`word predicted`).

    Args:
      data: a `tagging.TaggingData`.
      tokenizer: the `tokenization.WordPieceTokenizer`.
    """
    label_ids = data.label_ids()
    featurized = {}
    for split in ("train", "dev") + (("test",) if options.predict and "test" in data.sentences else ()):
        sentences = data.sentences[split]
        featurized[split] = tagging.featurize(sentences, tokenizer, config.max_seq_length, label_ids)
        logging.info("%s %s: %d sentences, %d words -> %d windows (%d sentences split, %d words cut to one window)",
                     data.name, split, len(sentences), sum(len(s.words) for s in sentences),
                     len(featurized[split][1]), featurized[split][2]["sentences_split"],
                     featurized[split][2]["words_truncated"])
    train_features = featurized["train"][0]
    num_steps = training_steps(data.name, len(train_features["input_ids"]), "training windows", config)

    def run(trial):
        keras.utils.set_random_seed(config.seed + trial - 1)
        with strategy.scope():
            model = finetuning.ElectraTagger(config, len(data.labels), data.name)
        trained = train_trial(trial, model, config, strategy, num_steps, vocab_file, model_dir, data.info(),
                              lambda batch, seed, context, start_step: finetuning.train_dataset(
                                  train_features, batch, seed, context, start_step), options)
        if trained is None:
            return None
        trainer, trial_dir, result = trained
        for split, (features, windows, stats) in featurized.items():
            if split == "train":
                continue
            sentences = data.sentences[split]
            dataset, n = finetuning.eval_dataset(features, config.eval_batch_size)
            predicted = tagging.word_tags(sentences, windows, trainer.predict(dataset)[:n].argmax(-1), data.labels)
            if split == "test":
                tagging.write_conll(os.path.join(trial_dir, "test_predictions.txt"), sentences, predicted)
                continue
            gold = [s.tags for s in sentences]
            result.update(tagging.score(gold, predicted, data.scheme, data.types))
            tagging.write_conll(os.path.join(trial_dir, "dev_predictions.txt"), sentences, gold, predicted)
        result.update(train_sentences_split=featurized["train"][2]["sentences_split"],
                      dev_sentences_split=featurized["dev"][2]["sentences_split"])
        return _finish(result, trial_dir)

    return num_steps, run


def run_all(run, num_trials, model_dir, name, model_size, options, qa=False):
    """Runs trials 1..num_trials; writes and returns the summary (every trial and the medians).

    Returns None if a SIGTERM stopped a trial (it is checkpointed; running
    again resumes it). For SQuAD (`qa`), the official prediction files of the
    trial with the median F1 are copied to `model_dir`.
    """
    trials = []
    for trial in range(1, num_trials + 1):
        result = run(trial)
        if result is None:
            logging.warning("SIGTERM: trial %d checkpointed; run the same command again to resume", trial)
            return None
        trials.append(result)
    scores = sorted({k for t in trials for k in t} - {"trial", "seed", "steps"})
    summary = {"task": name, "model_size": model_size, "init_checkpoint": options.init_checkpoint,
               "num_trials": len(trials), "trials": trials,
               "median": {k: statistics.median(t[k] for t in trials) for k in scores}}
    summary.update(summary["median"])
    write_json(summary, os.path.join(model_dir, "results.json"))
    if qa:
        median_trial = sorted(trials, key=lambda t: t["f1"])[(len(trials) - 1) // 2]["trial"]
        for file_name in ("predictions.json", "null_odds.json"):
            source = os.path.join(model_dir, f"trial_{median_trial}", file_name)
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(model_dir, file_name))
    return summary


def write_predictions(task, split, examples, predictions, output_dir):
    """Test-set predictions as `index<TAB>prediction`, under GLUE's submission file names."""
    file_name = dict(task.submission_names).get(split, f"{task.name}_{split}.tsv")
    path = os.path.join(output_dir, file_name)
    with open(path, "w") as f:
        f.write("index\tprediction\n")
        for example, label in zip(examples, tasks.label_names(task, predictions)):
            f.write(f"{example.index}\t{label}\n")
    logging.info("wrote %d %s predictions to %s", len(examples), split, path)


def write_json(value, path):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def _finish(result, trial_dir):
    write_json(result, os.path.join(trial_dir, "eval_results.json"))
    logging.info("trial %d: %s", result["trial"], result)
    return result
