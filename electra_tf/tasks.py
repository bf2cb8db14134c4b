"""Fine-tuning tasks: GLUE as the authors read it, and a user's own labelled TSV/CSV.

A task turns files (or a TensorFlow Datasets split) into `Example`s; one
featuriser turns examples of any source into model inputs. GLUE files are
read with the authors' column layout and quoting off (QQP and MNLI contain
stray quotes); a line with too few columns, or a label outside the task's
label set, is an error naming the file and line.

Example:
```python
task = get_task("mrpc")
train = task.read_split("glue_data", "train")          # MRPC/train.tsv, doubled unordered
features = featurize(train, tokenizer, 128, task.label_ids())
```
"""

import csv
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from electra_tf import text_files
from electra_tf import tokenization

Column = Union[int, str]


@dataclasses.dataclass(frozen=True)
class Example:
    """One labelled (or, for test sets, unlabelled) text or text pair.

    Args:
      guid: where it came from (`file:line`, or the TFDS split and index).
      text_a, text_b: the text and the optional second text.
      label: a label name, a float (regression) or None (test data).
      index: the id GLUE's submission format expects for test examples.
    """
    guid: str
    text_a: str
    text_b: Optional[str]
    label: Union[str, float, None]
    index: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one split's fields are: column indices (negative from the end) or header names."""
    text_a: Column
    text_b: Optional[Column]
    label: Optional[Column]
    header: bool
    index: Optional[Column] = None


@dataclasses.dataclass(frozen=True)
class Task:
    """A sentence(-pair) classification or regression task read from delimited files.

    Args:
      name: the task's name (`--task`).
      labels: label names, or None for regression.
      metrics: the metric names `metrics.task_metrics` reports.
      train_layout, test_layout: column layouts of labelled and test files.
      dirs: folder names tried under `--data_dir` (GLUE's and the authors').
      splits: {split name: file name}.
      double_unordered: add each training pair again with the texts swapped.
      delimiter, quoting: how the files are split (GLUE: tabs, quoting off).
      tfds_name, tfds_splits, tfds_keys: the same task in TensorFlow
        Datasets: its name, {our split: TFDS split} and the text features.
      submission_names: {test split: file name} for `--predict` (GLUE's).
    """
    name: str
    labels: Optional[Tuple[str, ...]]
    metrics: Tuple[str, ...]
    train_layout: Layout
    test_layout: Optional[Layout] = None
    dirs: Tuple[str, ...] = ()
    splits: Tuple[Tuple[str, str], ...] = (("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test.tsv"))
    double_unordered: bool = False
    delimiter: str = "\t"
    quoting: int = csv.QUOTE_NONE
    tfds_name: Optional[str] = None
    tfds_splits: Tuple[Tuple[str, str], ...] = (("train", "train"), ("dev", "validation"), ("test", "test"))
    tfds_keys: Tuple[str, ...] = ()
    submission_names: Tuple[Tuple[str, str], ...] = ()

    @property
    def is_regression(self):
        return self.labels is None

    @property
    def num_outputs(self):
        return 1 if self.is_regression else len(self.labels)

    @property
    def eval_splits(self):
        """The labelled evaluation splits (`dev`, or MNLI's matched and mismatched)."""
        return [s for s, _ in self.splits if s != "train" and not s.startswith("test")]

    @property
    def test_splits(self):
        return [s for s, _ in self.splits if s.startswith("test")]

    def label_ids(self):
        return None if self.is_regression else {label: i for i, label in enumerate(self.labels)}

    def split_file(self, data_dir, split):
        """The path of `split` under `data_dir` (or its task folder)."""
        file_name = dict(self.splits).get(split)
        if file_name is None:
            raise ValueError(f"task {self.name} has no split {split!r}; it has {[s for s, _ in self.splits]}")
        for folder in self.dirs + ("",):
            path = os.path.join(data_dir, folder, file_name)
            if os.path.exists(path):
                return path
        tried = ", ".join(os.path.join(data_dir, d, file_name) for d in self.dirs + ("",))
        raise FileNotFoundError(f"task {self.name}: no {split} file; tried {tried}")

    def read_split(self, data_dir, split):
        """Reads one split's file into examples (training pairs doubled if `double_unordered`)."""
        path = self.split_file(data_dir, split)
        test = split.startswith("test")
        layout = self.test_layout if test and self.test_layout else self.train_layout
        examples = read_examples(path, layout, self.delimiter, self.quoting, labelled=not test)
        return self._finish(examples, split, path)

    def read_tfds(self, split, tfds_name=None, data_dir=None):
        """Reads one split through TensorFlow Datasets into the same examples as `read_split`."""
        import tensorflow_datasets as tfds  # Only this path needs it.

        name = tfds_name or self.tfds_name
        if not name:
            raise ValueError(f"task {self.name} has no TensorFlow Datasets name; pass --tfds_name")
        tfds_split = dict(self.tfds_splits).get(split, split)
        dataset, info = tfds.load(name, split=tfds_split, data_dir=data_dir, with_info=True)
        label_feature = info.features["label"] if "label" in info.features else None
        keys = self.tfds_keys or [k for k in info.features if k not in ("label", "idx")][:2]
        examples = []
        for i, record in enumerate(tfds.as_numpy(dataset)):
            texts = [record[k].decode("utf-8") for k in keys]
            label = None
            if not split.startswith("test") and label_feature is not None:
                label = _tfds_label(self, label_feature, record["label"])
            index = str(record["idx"]) if "idx" in record else str(i)
            examples.append(Example(f"{name}/{tfds_split}:{i}", texts[0], texts[1] if len(texts) > 1 else None,
                                    label, index))
        return self._finish(examples, split, f"{name}/{tfds_split}")

    def _finish(self, examples, split, source):
        if not examples:
            raise ValueError(f"{source}: the {split} split of {self.name} has no examples")
        examples = [dataclasses.replace(e, label=self.check_label(e.label, e.guid)) for e in examples]
        if split == "train" and self.double_unordered:
            examples += [dataclasses.replace(e, guid=e.guid + ":swapped", text_a=e.text_b, text_b=e.text_a)
                         for e in examples]
        return examples

    def check_label(self, label, where):
        """`label` as the task uses it (a float for regression), or an error naming `where`."""
        if label is None:
            return None
        if self.is_regression:
            try:
                return float(label)
            except ValueError:
                raise ValueError(f"{where}: regression target {label!r} is not a number") from None
        if label not in self.labels:
            raise ValueError(f"{where}: label {label!r} is not one of {self.name}'s labels {list(self.labels)}")
        return label


def _tfds_label(task, feature, value):
    if task.is_regression:
        return float(value)
    # GLUE's TSVs write binary labels as 0/1, TFDS names them (`acceptable`, ...)
    # in the same order; other tasks share the label names.
    return str(int(value)) if task.labels == ("0", "1") else feature.int2str(int(value))


def read_examples(path, layout, delimiter="\t", quoting=csv.QUOTE_NONE, labelled=True):
    """Reads a delimited file into examples (labels as written), following `layout`.

    Raises:
      ValueError naming the file and line: too few columns, a missing header column or bytes that are not
      UTF-8.
    """
    csv.field_size_limit(sys.maxsize)  # Long documents are legal.
    examples = []
    with text_files.open_text(path, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = None
        for line_no, row in enumerate(reader, 1):
            if layout.header and header is None:
                header = row
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # Blank lines are not examples (a trailing newline, for one).
            where = f"{path}:{line_no}"

            def column(spec):
                position = _position(spec, header, path)
                if not -len(row) <= position < len(row):
                    raise ValueError(f"{where}: expected at least {_needed(position)} columns, got {len(row)}")
                return row[position]

            label = column(layout.label).strip() if labelled and layout.label is not None else None
            text_b = column(layout.text_b) if layout.text_b is not None else None
            index = column(layout.index) if layout.index is not None else str(len(examples))
            examples.append(Example(where, column(layout.text_a), text_b, label, index))
    return examples


def _position(spec, header, path):
    if isinstance(spec, int):
        return spec
    if header is None or spec not in header:
        raise ValueError(f"{path}: no column named {spec!r} in the header {header}")
    return header.index(spec)


def _needed(position):
    return position + 1 if position >= 0 else -position


# --- GLUE, with the authors' column layouts ---

_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")


def _glue(name, dirs, labels, metrics, train, test, submission, tfds_keys, **kwargs):
    return Task(name, labels, metrics, train, test, dirs=dirs, tfds_name=f"glue/{dirs[0].lower().replace('-', '')}",
                tfds_keys=tfds_keys, submission_names=submission, **kwargs)


GLUE_TASKS = {task.name: task for task in (
    _glue("cola", ("CoLA", "cola"), _BINARY, ("mcc", "accuracy"),
          Layout(3, None, 1, header=False), Layout(1, None, None, header=True, index=0),
          (("test", "CoLA.tsv"),), ("sentence",)),
    _glue("sst", ("SST-2", "sst"), _BINARY, ("accuracy",),
          Layout(0, None, 1, header=True), Layout(1, None, None, header=True, index=0),
          (("test", "SST-2.tsv"),), ("sentence",)),
    _glue("mrpc", ("MRPC", "mrpc"), _BINARY, ("accuracy", "f1"),
          Layout(3, 4, 0, header=True), Layout(3, 4, None, header=True, index=0),
          (("test", "MRPC.tsv"),), ("sentence1", "sentence2"), double_unordered=True),
    _glue("sts", ("STS-B", "sts"), None, ("pearson", "spearman"),
          Layout(-3, -2, -1, header=True), Layout(-2, -1, None, header=True, index=0),
          (("test", "STS-B.tsv"),), ("sentence1", "sentence2"), double_unordered=True),
    _glue("qqp", ("QQP", "qqp"), _BINARY, ("accuracy", "f1"),
          Layout(3, 4, 5, header=True), Layout(1, 2, None, header=True, index=0),
          (("test", "QQP.tsv"),), ("question1", "question2")),
    _glue("mnli", ("MNLI", "mnli"), ("contradiction", "entailment", "neutral"), ("accuracy",),
          Layout(8, 9, -1, header=True), Layout(8, 9, None, header=True, index=0),
          (("test_matched", "MNLI-m.tsv"), ("test_mismatched", "MNLI-mm.tsv")), ("premise", "hypothesis"),
          splits=(("train", "train.tsv"), ("dev_matched", "dev_matched.tsv"),
                  ("dev_mismatched", "dev_mismatched.tsv"), ("test_matched", "test_matched.tsv"),
                  ("test_mismatched", "test_mismatched.tsv")),
          tfds_splits=(("train", "train"), ("dev_matched", "validation_matched"),
                       ("dev_mismatched", "validation_mismatched"), ("test_matched", "test_matched"),
                       ("test_mismatched", "test_mismatched"))),
    _glue("qnli", ("QNLI", "qnli"), _NLI2, ("accuracy",),
          Layout(1, 2, 3, header=True), Layout(1, 2, None, header=True, index=0),
          (("test", "QNLI.tsv"),), ("question", "sentence")),
    _glue("rte", ("RTE", "rte"), _NLI2, ("accuracy",),
          Layout(1, 2, 3, header=True), Layout(1, 2, None, header=True, index=0),
          (("test", "RTE.tsv"),), ("sentence1", "sentence2")),
    _glue("wnli", ("WNLI", "wnli"), _BINARY, ("accuracy",),
          Layout(1, 2, 3, header=True), Layout(1, 2, None, header=True, index=0),
          (("test", "WNLI.tsv"),), ("sentence1", "sentence2")),
)}
# GLUE's own names and the authors' short ones both work.
ALIASES = {"sst2": "sst", "sst-2": "sst", "stsb": "sts", "sts-b": "sts"}
GENERIC_TASKS = ("text_classification", "text_regression")
TASK_NAMES = tuple(GLUE_TASKS) + GENERIC_TASKS


def canonical_name(name):
    """The task's canonical name (`sst2` -> `sst`), for configs and output names."""
    name = name.lower()
    return ALIASES.get(name, name)


def get_task(name):
    """A GLUE task by name (GLUE's or the authors' spelling)."""
    task = GLUE_TASKS.get(canonical_name(name))
    if task is None:
        raise ValueError(f"--task={name!r}: choose one of {sorted(GLUE_TASKS) + sorted(ALIASES)} "
                         f"or {list(GENERIC_TASKS)}")
    return task


def generic_task(train_file, text_a_column, label_column, text_b_column=None, header=False,
                 regression=False, delimiter=None, dev_file=None, test_file=None, name=None):
    """A task over the user's own TSV/CSV files; labels are those of the training file.

    Args:
      train_file, dev_file, test_file: the files (dev and test optional).
      text_a_column, text_b_column, label_column: column indices or, with a
        header, column names. Test files use the same text columns.
      header: whether the files' first line is a header.
      regression: numeric targets (MSE head) instead of labels.
      delimiter: None picks `,` for `.csv` files and a tab otherwise. CSV
        files use CSV quoting; TSV files are read with quoting off, as GLUE.
      name: the task's name in outputs (default: text_classification/text_regression).

    Returns:
      A `Task` whose splits are `train`, and `dev`/`test` when given.
    """
    if not train_file:
        raise FileNotFoundError(f"--train_file={train_file!r} does not exist")
    check_files({"--train_file": train_file, "--dev_file": dev_file, "--test_file": test_file})
    is_csv = train_file.lower().endswith(".csv")
    delimiter = delimiter or ("," if is_csv else "\t")
    quoting = csv.QUOTE_MINIMAL if is_csv else csv.QUOTE_NONE
    layout = Layout(*(_parse_column(c) for c in (text_a_column, text_b_column, label_column)), header=header)
    labels = None
    if not regression:
        # Labels in the order first seen: a class id is stable for a given training file.
        labels = tuple(dict.fromkeys(e.label for e in read_examples(train_file, layout, delimiter, quoting)))
        if len(labels) < 2:
            raise ValueError(f"{train_file}: classification needs at least 2 labels, found {list(labels)}")
    splits = [(s, os.path.abspath(p)) for s, p in (("train", train_file), ("dev", dev_file), ("test", test_file))
              if p]
    metric_names = ("pearson", "spearman", "mse") if regression else ("accuracy",)
    return Task(name or GENERIC_TASKS[1 if regression else 0], labels, metric_names, layout,
                dataclasses.replace(layout, label=None), splits=tuple(splits), delimiter=delimiter, quoting=quoting)


def check_files(flag_paths):
    """Raises FileNotFoundError naming the flag of the first given path ({flag: path or None}) that is missing."""
    for flag, path in flag_paths.items():
        if path and not os.path.exists(path):
            raise FileNotFoundError(f"{flag}={path!r} does not exist")


def _parse_column(value):
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        return value


# --- Features ---

def featurize(examples, tokenizer, max_seq_length, label_ids=None, batch_size=2048):
    """Tokenises examples into `[CLS] A [SEP] B [SEP]` arrays.

    Pairs longer than `max_seq_length` are truncated one token at a time
    from the longer side (BERT's and the authors' rule).

    Args:
      examples: a list of `Example`.
      tokenizer: a `tokenization.WordPieceTokenizer`.
      max_seq_length: output length (padded with 0).
      label_ids: {label name: id}; None for regression (float targets).

    Returns:
      dict of numpy arrays: int32 `input_ids`, `input_mask`, `segment_ids`
      [n, max_seq_length], `label_ids` [n] (int32, or float32 for regression;
      0 where a test example has no label) and `truncated` (count of examples cut).
    """
    n = len(examples)
    arrays = {k: np.zeros([n, max_seq_length], np.int32) for k in ("input_ids", "input_mask", "segment_ids")}
    labels = np.zeros([n], np.float32 if label_ids is None else np.int32)
    truncated = 0
    for pair in (False, True):  # Single texts and pairs are packed apart.
        group = np.array([i for i, e in enumerate(examples) if (e.text_b is not None) == pair], np.int64)
        for start in range(0, len(group), batch_size):
            rows = group[start:start + batch_size]
            fields = ("text_a", "text_b") if pair else ("text_a",)
            texts = [np.array([getattr(examples[i], f) for i in rows], dtype=object) for f in fields]
            ids, segments, cut = tokenization.pack_inputs(tokenizer, texts, max_seq_length)
            arrays["input_ids"][rows] = ids.to_tensor(shape=[None, max_seq_length]).numpy()
            arrays["segment_ids"][rows] = segments.to_tensor(shape=[None, max_seq_length]).numpy()
            arrays["input_mask"][rows] = tf.sequence_mask(ids.row_lengths(), max_seq_length, tf.int32).numpy()
            truncated += int(np.sum(cut.numpy()))
    for i, example in enumerate(examples):
        if example.label is not None:
            labels[i] = example.label if label_ids is None else label_ids[example.label]
    if truncated:
        logging.info("%d of %d examples were longer than %d tokens and truncated", truncated, n, max_seq_length)
    return {**arrays, "label_ids": labels, "truncated": truncated}


def read_task_examples(task, split, data_dir=None, tfds_name=None, tfds_data_dir=None):
    """Examples of `split` from the task's files, or from TFDS when `tfds_name` is given."""
    if tfds_name:
        return task.read_tfds(split, tfds_name, tfds_data_dir)
    if task.name in GLUE_TASKS and not data_dir:
        raise ValueError(f"--task={task.name} needs --data_dir (the GLUE download) or --tfds_name")
    return task.read_split(data_dir or "", split)


TASK_FILE = "task.json"


def write_task_file(model_dir, info):
    """Records in a fine-tuned model dir what serving needs of its task (see `task_info`)."""
    with open(os.path.join(model_dir, TASK_FILE), "w") as f:
        json.dump(info, f, indent=2)


def task_info(task):
    """A classification task's name, labels (None: regression) and whether it takes text pairs."""
    return {"task": task.name, "kind": "classifier", "labels": list(task.labels) if task.labels else None,
            "text_pair": task.train_layout.text_b is not None}


def read_task_file(model_dir):
    path = os.path.join(model_dir, TASK_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{model_dir} has no {TASK_FILE}: pass a run_finetuning.py trial dir "
                         "(<model_dir>/trial_<k>)")
    with open(path) as f:
        return json.load(f)


def label_names(task, predictions: Sequence) -> list:
    """Predicted class ids (or regression values) as the strings GLUE's submission format expects."""
    if task.is_regression:
        return [f"{float(p):.3f}" for p in predictions]
    return [task.labels[int(p)] for p in predictions]
