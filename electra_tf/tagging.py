"""Token tagging (part of speech, chunking, NER): CoNLL files, word-piece alignment, windows and scoring.

Files are in CoNLL's column format: one word a line with its columns
separated by whitespace (or by TABs, when the line has one: then a word may
hold a space and an empty column still counts), a blank line between
sentences, `-DOCSTART-` lines skipped. The word is `word_column` (default 0)
and the tag `tag_column` (default -1, the last), as the authors read them.

Each word is tokenized on its own and its label sits on its first word-piece;
the other pieces, [CLS], [SEP] and padding carry `IGNORE` (no loss). A
sentence whose pieces do not fit `max_seq_length` is split into consecutive
windows of whole words, so every word is tagged and scored exactly once.

Span tags (IOB1, IOB2 or BIOES) are scored by entity-level precision, recall
and F1 with conlleval's rules for where a chunk begins and ends; tags without
such a prefix (part of speech) by token accuracy.

Example:
```python
data = read_task("tagging", {"train": "train.txt", "dev": "dev.txt"})
features, windows, stats = featurize(data.sentences["dev"], tokenizer, 128, data.label_ids())
```
"""

import dataclasses
import os
import re
from typing import Dict, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from electra_tf import text_files

# Label id of positions without a loss; Hugging Face's ignore index, so their features compare as they are.
IGNORE = -100
DOCSTART = "-DOCSTART-"
_BLANKS = " \t\f\v"
_FIELD = re.compile(f"[^{_BLANKS}]+")
SCHEMES = ("auto", "iob1", "iob2", "bioes", "token")
# The chunk prefixes each span scheme allows.
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}
# Named presets: {task: (folders tried under --data_dir, then the data dir itself; (train, dev, test) names)}.
PRESETS = {
    "chunk": ("chunk", (("train.txt", "dev.txt", "test.txt"),)),  # CoNLL-2000, the authors' layout.
    "ner": ("ner", (("eng.train", "eng.testa", "eng.testb"),  # CoNLL-2003 as distributed,
                    ("train.txt", "valid.txt", "test.txt"))),  # and as most mirrors name it.
}
TASK_NAMES = ("tagging",) + tuple(PRESETS)


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence of a CoNLL file.

    Args:
      words: the words.
      tags: their tags, or None (an untagged test file).
      path: the file it came from.
      lines: each word's line number, for errors that name it.
    """
    words: Tuple[str, ...]
    tags: Optional[Tuple[str, ...]]
    path: str = ""
    lines: Tuple[int, ...] = ()

    def where(self, i):
        return f"{self.path}:{self.lines[i]}" if self.lines else self.path


def _position(fields, column):
    """The index `column` (negative from the end) names in `fields`, or None when the line is too short."""
    position = column if column >= 0 else len(fields) + column
    return position if 0 <= position < len(fields) else None


def read_conll(path, word_column=0, tag_column=-1, tagged=True):
    """Reads a CoNLL column file into sentences.

    Args:
      path: the file (UTF-8).
      word_column, tag_column: column indices, negative from the end.
      tagged: whether lines must carry a tag; None lets the first word line
        decide (a test file may have words only), the rest must follow it.

    Returns:
      A list of `Sentence`.

    Raises:
      ValueError naming the file and line: bytes that are not UTF-8, no word
      column, too few columns for a tag, an empty word or tag, no sentences.
    """
    sentences, rows = [], []

    def end_sentence():
        if rows:
            words, tags, lines = zip(*rows)
            sentences.append(Sentence(words, tags if tagged else None, path, lines))
            rows.clear()

    # Lines end at "\n" and columns at ASCII blanks only: str.splitlines() and str.split() would also
    # break at U+2028, U+0085, U+00A0 and the like inside a word.
    for line_no, line in enumerate(text_files.read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        fields = [f.strip(_BLANKS) for f in line.split("\t")] if "\t" in line else _FIELD.findall(line)
        if not any(fields):
            end_sentence()
            continue
        if fields[0] == DOCSTART:
            continue
        where = f"{path}:{line_no}"
        word_at = _position(fields, word_column)
        if word_at is None:
            raise ValueError(f"{where}: no word column {word_column} (--word_column): the line has "
                             f"{len(fields)} column(s)")
        tag_at = _position(fields, tag_column)
        if tagged is None:
            tagged = tag_at is not None and tag_at != word_at
        if tagged and (tag_at is None or tag_at == word_at):
            raise ValueError(f"{where}: too few columns ({len(fields)}) for the word in column {word_column} and "
                             f"the tag in column {tag_column} (--word_column, --tag_column)")
        word, tag = fields[word_at], fields[tag_at] if tagged else None
        if not word or tag == "":
            raise ValueError(f"{where}: empty {'word' if not word else 'tag'} column")
        rows.append((word, tag, line_no))
    end_sentence()
    if not sentences:
        raise ValueError(f"{path}: no sentences (the file is empty or holds only blank and {DOCSTART} lines)")
    return sentences


# --- Tag schemes and the label set ---

def split_tag(tag):
    """(prefix, type) of a span tag: `B-PER` -> ("B", "PER"), `O` -> ("O", ""); (None, tag) without a prefix."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] == "-":
        return tag[0], tag[2:]
    return None, tag


def detect_scheme(sentences):
    """`bioes`, `iob1`, `iob2` or `token` (tags without chunk prefixes, e.g. part of speech).

    Span tags are `O` and `B-`/`I-`/`E-`/`S-` prefixed ones. E- or S- means
    BIOES; an I- that starts a chunk (first in a sentence, after O or after
    another type) means IOB1, where B- only separates touching chunks; else IOB2.
    """
    prefixes, starts_with_i = set(), False
    for sentence in sentences:
        previous = ("O", "")
        for tag in sentence.tags:
            prefix, kind = split_tag(tag)
            if prefix is None:
                return "token"
            prefixes.add(prefix)
            starts_with_i |= prefix == "I" and (previous[0] == "O" or previous[1] != kind)
            previous = (prefix, kind)
    if prefixes <= {"O"}:
        return "token"  # No chunk at all: nothing to score as spans.
    if prefixes & {"E", "S"}:
        return "bioes"
    return "iob1" if starts_with_i else "iob2"


def check_scheme(sentences, scheme):
    """Raises a ValueError naming the file and line of the first tag that `scheme` does not allow."""
    if scheme == "token":
        return
    allowed = _PREFIXES[scheme] + "O"
    for sentence in sentences:
        for i, tag in enumerate(sentence.tags):
            prefix, _ = split_tag(tag)
            if prefix is None or prefix not in allowed:
                raise ValueError(f"{sentence.where(i)}: tag {tag!r} is not a --tag_scheme={scheme} tag (O or "
                                 f"{'/'.join(p + '-' for p in _PREFIXES[scheme])}TYPE)")


@dataclasses.dataclass(frozen=True)
class TaggingData:
    """A tagging task's sentences and what the training file says about its tags.

    Args:
      name: the task (`tagging`, `chunk`, `ner`).
      sentences: {split: [Sentence]} for `train`, `dev` and, if given, `test`.
      labels: the training file's tags, sorted (the authors' order).
      scheme: `iob1`, `iob2`, `bioes` or `token`.
      paths: {split: file}.
    """
    name: str
    sentences: Dict[str, list]
    labels: Tuple[str, ...]
    scheme: str
    paths: Dict[str, str]

    def label_ids(self):
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def types(self):
        """The chunk types of a span task (per-type F1 is reported for each), else ()."""
        return () if self.scheme == "token" else tuple(sorted({split_tag(t)[1] for t in self.labels} - {""}))

    def info(self):
        """What serving needs to know of the task (`tasks.write_task_file`)."""
        return {"task": self.name, "kind": "tagger", "labels": list(self.labels), "scheme": self.scheme}


def read_task(name, paths, word_column=0, tag_column=-1, scheme="auto"):
    """Reads a tagging task's files; the training file fixes the tags and (with `auto`) the scheme.

    Args:
      name: the task's name in outputs.
      paths: {"train": file, "dev": file, "test": optional file (its tags optional)}.
      word_column, tag_column: as `read_conll`.
      scheme: one of `SCHEMES`; `auto` detects it from the training file.

    Raises:
      ValueError naming the file and line of a tag the training file does not
      have, or (with a given scheme) of a tag the scheme does not allow.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"--tag_scheme={scheme!r}: choose one of {SCHEMES}")
    sentences = {split: read_conll(path, word_column, tag_column, tagged=None if split == "test" else True)
                 for split, path in paths.items() if path}
    train = sentences["train"]
    scheme = detect_scheme(train) if scheme == "auto" else scheme
    check_scheme(train, scheme)
    labels = tuple(sorted({tag for sentence in train for tag in sentence.tags}))
    known = set(labels)
    for split, split_sentences in sentences.items():
        for sentence in split_sentences:
            for i, tag in enumerate(sentence.tags or ()):
                if tag not in known:
                    raise ValueError(f"{sentence.where(i)}: tag {tag!r} is not in the training file "
                                     f"{paths['train']} (its tags: {list(labels)})")
    return TaggingData(name, sentences, labels, scheme, dict(paths))


def preset_files(name, data_dir):
    """{"train", "dev", "test"} files of a named preset (`PRESETS`) under `data_dir` (test: None if absent).

    Raises:
      FileNotFoundError listing every place tried.
    """
    folder, layouts = PRESETS[name]
    tried = []
    for directory in (os.path.join(data_dir, folder), data_dir):
        for layout in layouts:
            train, dev, test = (os.path.join(directory, f) for f in layout)
            if os.path.isfile(train) and os.path.isfile(dev):
                return {"train": train, "dev": dev, "test": test if os.path.isfile(test) else None}
            tried.append(f"{train} and {dev}")
    raise FileNotFoundError(f"--task={name}: no training and dev files; tried " + "; ".join(tried))


# --- Word pieces and windows ---

def word_pieces(tokenizer, words, batch_size=4096):
    """Each word's WordPiece ids, the word tokenized on its own (a word such as `U.S.` may give several).

    A word that normalisation empties (a lone combining accent, say) becomes
    [UNK] so that it is still tagged; Hugging Face's fast tokenizer gives it
    no piece at all, and the authors' code put its label on the next word's piece.

    Args:
      tokenizer: a `tokenization.WordPieceTokenizer`.
      words: a list of strings.

    Returns:
      A list of lists of int ids, one per word.
    """
    pieces = []
    for start in range(0, len(words), batch_size):
        ids = tokenizer(tf.constant(list(words[start:start + batch_size]), tf.string)).to_list()
        pieces += [word or [tokenizer.unk_id] for word in ids]
    return pieces


def window_spans(piece_counts, budget):
    """[start, end) word ranges of consecutive windows of whole words with at most `budget` pieces each.

    A word joins the current window if it fits, else starts the next one
    (a word longer than the budget alone fills a window, cut to the budget).
    The authors and Hugging Face's run_ner.py truncate a long sentence instead,
    and the cut words silently leave the gold set; Model Garden splits too.

    Example:
    ```python
    window_spans([2, 3, 1, 4], budget=5)  # [(0, 2), (2, 4)]
    ```
    """
    spans, start, used = [], 0, 0
    for i, count in enumerate(piece_counts):
        if i > start and used + count > budget:
            spans.append((start, i))
            start, used = i, 0
        used += count
    if start < len(piece_counts):
        spans.append((start, len(piece_counts)))
    return spans


@dataclasses.dataclass(frozen=True)
class Window:
    """Where the words of one feature row come from.

    Args:
      sentence_index: the sentence.
      first_word: the sentence's index of the window's first word.
      positions: each of its words' first-piece position in the row.
    """
    sentence_index: int
    first_word: int
    positions: np.ndarray


def featurize(sentences, tokenizer, max_seq_length, label_ids=None):
    """`[CLS] pieces [SEP]` rows, one per window, with each word's label on its first piece.

    Segment ids are 0 for every token: the authors' tagging code gives every
    token segment id 1 (a known bug, electra#131), a type pre-training never
    used for single texts.

    Args:
      sentences: a list of `Sentence`.
      tokenizer: a `tokenization.WordPieceTokenizer`.
      max_seq_length: row length (padded with 0).
      label_ids: {tag: id}; None, or untagged sentences, give no labels.

    Returns:
      (features, windows, stats): dict of int32 numpy arrays `input_ids`,
      `input_mask`, `segment_ids` and `label_ids` [windows, max_seq_length]
      (`IGNORE` where there is no label); a `Window` per row; and
      {"sentences_split": sentences spread over several windows,
      "words_truncated": words with more pieces than a window holds}.
      An empty sentence has no window.
    """
    budget = max_seq_length - 2
    pieces = iter(word_pieces(tokenizer, [w for s in sentences for w in s.words]))
    rows, windows, stats = [], [], {"sentences_split": 0, "words_truncated": 0}
    for index, sentence in enumerate(sentences):
        word_ids = [next(pieces) for _ in sentence.words]
        stats["words_truncated"] += sum(len(ids) > budget for ids in word_ids)
        spans = window_spans([len(ids) for ids in word_ids], budget)
        stats["sentences_split"] += len(spans) > 1
        for start, end in spans:
            ids, labels, positions = [tokenizer.cls_id], [IGNORE], []
            for i in range(start, end):
                positions.append(len(ids))
                kept = word_ids[i][:budget]
                ids += kept
                tag = sentence.tags[i] if sentence.tags and label_ids else None
                labels += [IGNORE if tag is None else label_ids[tag]] + [IGNORE] * (len(kept) - 1)
            rows.append((ids + [tokenizer.sep_id], labels + [IGNORE]))
            windows.append(Window(index, start, np.array(positions, np.int32)))
    features = {k: np.zeros([len(rows), max_seq_length], np.int32) for k in ("input_ids", "input_mask",
                                                                               "segment_ids")}
    features["label_ids"] = np.full([len(rows), max_seq_length], IGNORE, np.int32)
    for row, (ids, labels) in enumerate(rows):
        features["input_ids"][row, :len(ids)] = ids
        features["input_mask"][row, :len(ids)] = 1
        features["label_ids"][row, :len(labels)] = labels
    if stats["sentences_split"]:
        logging.info("%d of %d sentences have more than %d word pieces and were split into windows",
                     stats["sentences_split"], len(sentences), budget)
    return features, windows, stats


def word_tags(sentences, windows, predicted_ids, labels):
    """Each sentence's predicted tags, read at its words' first pieces across its windows.

    Args:
      predicted_ids: int array [windows, max_seq_length] of label ids.
      labels: the label names.
    """
    tags = [[None] * len(s.words) for s in sentences]
    for window, row in zip(windows, predicted_ids):
        for offset, position in enumerate(window.positions):
            tags[window.sentence_index][window.first_word + offset] = labels[row[position]]
    return tags


# --- Scoring ---

def chunks(tags):
    """The (start, end, type) chunks of a span-tag sequence (end inclusive), by conlleval's rules.

    A chunk starts at B-X or S-X, at I-X or E-X after O, E-, S- or the
    sentence start, and wherever the type changes; it ends before O and
    before a start (so after E- or S-). This is seqeval's default mode, which adds
    the E-/S- rules to conlleval's; conlleval itself has no S- rule and no
    end after E-, so it counts S-X S-X (and E-X B-X) as ONE chunk where
    this counts two. IOB1 and IOB2 tags of the same chunks score the same.
    """
    found, start = [], None
    previous, previous_type = "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = split_tag(tag)
        begins = prefix in ("B", "S") or (prefix in ("I", "E") and previous in ("O", "E", "S")) or (
            prefix != "O" and kind != previous_type)
        ends = prefix == "O" or begins
        if start is not None and ends:
            found.append((start, i - 1, previous_type))
            start = None
        if prefix != "O" and begins:
            start = i
        previous, previous_type = prefix, kind
    return found


def _prf(correct, predicted, gold):
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(gold, predicted, scheme, types=()):
    """Token accuracy and, for span schemes, entity-level micro precision, recall and F1 (as fractions).

    Args:
      gold, predicted: lists of tag sequences, one per sentence (empty ones count nothing).
      scheme: `token` for accuracy only, else a span scheme.
      types: chunk types that get an `f1_<type>` (0 if neither side has one),
        so every trial reports the same keys.

    Returns:
      {"accuracy"} or {"accuracy", "precision", "recall", "f1", "f1_<type>"...}.
    """
    pairs = [(g, p) for gold_tags, predicted_tags in zip(gold, predicted) for g, p in zip(gold_tags, predicted_tags)]
    result = {"accuracy": float(np.mean([g == p for g, p in pairs])) if pairs else 0.0}
    if scheme == "token":
        return result
    counts = {}  # type -> [correct, predicted, gold]
    for gold_tags, predicted_tags in zip(gold, predicted):
        gold_chunks, predicted_chunks = set(chunks(gold_tags)), set(chunks(predicted_tags))
        for chunk_set, slot in ((gold_chunks & predicted_chunks, 0), (predicted_chunks, 1), (gold_chunks, 2)):
            for chunk in chunk_set:
                counts.setdefault(chunk[2], [0, 0, 0])[slot] += 1
    totals = np.sum(list(counts.values()), axis=0) if counts else np.zeros(3)
    result["precision"], result["recall"], result["f1"] = _prf(*totals)
    for kind in types:
        result[f"f1_{kind}"] = _prf(*counts.get(kind, (0, 0, 0)))[2]
    return result


def write_conll(path, sentences: Sequence[Sentence], *columns):
    """Writes `word column...` a line (space-separated, conlleval's input), a blank line after each sentence.

    Args:
      columns: lists of tag sequences, one entry per sentence (e.g. gold, predicted).
    """
    with open(path, "w", encoding="utf-8") as f:
        for i, sentence in enumerate(sentences):
            for j, word in enumerate(sentence.words):
                f.write(" ".join([word] + [column[i][j] for column in columns]) + "\n")
            f.write("\n")
