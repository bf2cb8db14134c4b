"""SQuAD 1.1 and 2.0 and the MRQA shared task: reading, windowed features, post-processing, official scores.

Features follow the authors' (and BERT's) recipe: the question cut to
`max_query_length` tokens, the context split into windows of the remaining
length every `doc_stride` tokens, `[CLS] question [SEP] window [SEP]`.
Character offsets come from `WordPieceTokenizer.tokenize_with_offsets`, so
predicted spans map back to the exact characters of the context. A training
window without the answer is labelled no-answer (position 0, SQuAD 2.0) or
dropped (1.1). The metrics re-implement the official v1.1 and v2.0
evaluation scripts (answer normalisation, max over gold answers, HasAns /
NoAns, the best no-answer threshold).

The MRQA 2019 shared task's sets (SQuAD, NewsQA, TriviaQA, SearchQA,
HotpotQA, Natural Questions, ...) come as JSON lines; `read_mrqa` reads them
into the same examples, which then go the SQuAD 1.1 way (every question has
an answer). The MRQA official script scores as SQuAD 1.1's does, against each
question's `answers`.

Example:
```python
examples, mismatched = read_examples("squad", "dev-v2.0.json")  # or ("newsqa", "dev.jsonl.gz")
features = featurize(examples, tokenizer, 384, 128, 64, training=False)
```
"""

import collections
import dataclasses
import json
import os
import re
import string
from typing import Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from electra_tf import input_order
from electra_tf import records
from electra_tf import text_files

# The authors' names of MRQA sets (their `finetuning_data/<name>/{train,dev}.jsonl`), and `mrqa` for any other.
MRQA_TASKS = ("mrqa", "newsqa", "naturalqs", "triviaqa", "searchqa")
# Task name -> SQuAD 2.0 (unanswerable questions)?
TASKS = {"squad": True, "squadv1": False, **dict.fromkeys(MRQA_TASKS, False)}


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One question on one context.

    Args:
      qas_id: the question's id (keys of predictions.json).
      question, context: the texts.
      answers: (text, character start) of every gold answer found in the
        context; training labels the first.
      is_impossible: SQuAD 2.0's unanswerable questions.
      gold_texts: the answers predictions are scored against, when they are
        not the texts of `answers` (MRQA's `answers`, which need not occur in
        the context).
    """
    qas_id: str
    question: str
    context: str
    answers: Tuple[Tuple[str, int], ...]
    is_impossible: bool = False
    gold_texts: Tuple[str, ...] = ()

    @property
    def answer_at_offset(self):
        """Whether the first answer's text stands at its `answer_start` (training needs it to)."""
        text, start = self.answers[0]
        return self.context[start:start + len(text)] == text


def read_squad(path, version_2):
    """Reads a file in the official SQuAD JSON format.

    Returns:
      (examples, mismatched): the examples, and the ids of questions whose
      (first) answer text is not at its `answer_start` in the context. Those
      cannot be labelled for training; callers count and report them.

    Raises:
      ValueError naming the file and the question id for malformed JSON, a
      missing field or an `answer_start` outside the context.
    """
    try:
        data = json.loads(text_files.read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: not in SQuAD format (no top-level 'data' list)")
    examples, mismatched = [], []
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", where)
            for q, qa in enumerate(_field(paragraph, "qas", where)):
                qas_id = str(_field(qa, "id", f"{where}.qas[{q}]"))
                where_q = f"{path}: question {qas_id}"
                question = _field(qa, "question", where_q)
                impossible = bool(qa.get("is_impossible", False)) if version_2 else False
                answers = []
                for answer in ([] if impossible else _field(qa, "answers", where_q)):
                    text, start = _field(answer, "text", where_q), _field(answer, "answer_start", where_q)
                    if not isinstance(start, int) or not 0 <= start <= len(context) - len(text):
                        raise ValueError(f"{where_q}: answer_start {start!r} with answer {text!r} is outside the "
                                         f"context ({len(context)} characters)")
                    answers.append((text, start))
                if not impossible and not answers:
                    raise ValueError(f"{where_q}: no answers, and not marked is_impossible"
                                     + ("" if version_2 else " (SQuAD 1.1 has no unanswerable questions)"))
                examples.append(QAExample(qas_id, question, context, tuple(answers), impossible))
                if answers and not examples[-1].answer_at_offset:
                    mismatched.append(qas_id)
    if not examples:
        raise ValueError(f"{path}: no questions")
    return examples, mismatched


def _field(record, name, where):
    if not isinstance(record, dict) or name not in record:
        raise ValueError(f"{where}: missing field {name!r}")
    return record[name]


def read_mrqa(path):
    """Reads a file in the MRQA shared task's JSON-lines format (`.jsonl`, or gzip-compressed as it ships).

    Each line after the header holds a `context` and its `qas`; a question's
    training answer is the first span of its first `detected_answers` entry
    (as the authors'), its scored answers are its `answers` (as the official
    script's). `char_spans` ends are inclusive.

    Returns:
      (examples, mismatched) as `read_squad`'s: `mismatched` lists the ids
      of questions whose first detected answer's text differs from the
      context at its span; those are left out of training.

    Raises:
      ValueError naming the file and line for a line that is not JSON, a
      missing field, a question without answers, a char span that starts
      outside the context, or bytes that are not UTF-8.
    """
    examples, mismatched = [], []
    # Split on "\n" only: str.splitlines would also split inside JSON strings at U+2028 and the like.
    for number, line in enumerate(text_files.read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        # The official files open with a header, the shared task's own samples do not (its scorer reads both).
        if number == 1 and isinstance(record, dict) and "header" in record:
            continue
        context = _field(record, "context", where)
        for q, qa in enumerate(_field(record, "qas", where)):
            qas_id = str(_field(qa, "qid", f"{where}: qas[{q}]"))
            where_q = f"{where}: question {qas_id}"
            gold_texts = _field(qa, "answers", where_q)
            if not (isinstance(gold_texts, list) and gold_texts and all(isinstance(t, str) for t in gold_texts)):
                raise ValueError(f"{where_q}: answers {gold_texts!r} is not a non-empty list of strings (MRQA "
                                 "questions are all answerable)")
            answers = []
            for answer in _field(qa, "detected_answers", where_q):
                text = _field(answer, "text", where_q)
                answers += [(text, _span_start(span, text, context, where_q))
                            for span in _field(answer, "char_spans", where_q)]
            if not answers:
                raise ValueError(f"{where_q}: no detected_answers with char_spans: nothing to train on")
            examples.append(QAExample(qas_id, _field(qa, "question", where_q), context, tuple(answers),
                                      gold_texts=tuple(gold_texts)))
            if not examples[-1].answer_at_offset:
                mismatched.append(qas_id)
    if not examples:
        raise ValueError(f"{path}: no questions")
    return examples, mismatched


def _span_start(span, text, context, where):
    """The start of a [start, end] char span, which must lie in the context.

    The label is the answer's text from that start: a file whose ends are
    exclusive (one past the inclusive end MRQA specifies) still trains right,
    and a span whose text is not at its start is counted and left out by the
    caller (`QAExample.answer_at_offset`), as the authors' reader skips it.
    """
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(i, int) for i in span)):
        raise ValueError(f"{where}: char span {span!r} is not [start, end]")
    start, end = span
    if not 0 <= start <= end or start >= len(context):
        raise ValueError(f"{where}: char span {span} of answer {text!r} is outside the context "
                         f"({len(context)} characters)")
    return start


def read_examples(task, path):
    """`read_mrqa` or `read_squad` (2.0 or 1.1), as the task name says."""
    return read_mrqa(path) if task in MRQA_TASKS else read_squad(path, TASKS[task])


def data_file(task, data_dir, split):
    """`<data_dir>/<split>.json` for SQuAD; `<split>.jsonl` or `<split>.jsonl.gz` for MRQA sets."""
    if task not in MRQA_TASKS:
        return os.path.join(data_dir, f"{split}.json")
    candidates = [os.path.join(data_dir, f"{split}{ext}") for ext in (".jsonl", ".jsonl.gz")]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise ValueError(f"--task={task}: found neither {' nor '.join(candidates)}")


# --- Features ---

@dataclasses.dataclass
class Window:
    """What post-processing needs of one feature: its example, and each position's place in the context."""
    example_index: int
    char_spans: np.ndarray  # [length, 2] character [start, end) of context tokens; -1 elsewhere.
    max_context: np.ndarray  # [length] bool: this window gives the token its most context.


def _tokenize(tokenizer, texts, batch_size=256):
    out = []
    for start in range(0, len(texts), batch_size):
        ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts[start:start + batch_size]))
        out += zip(ids.to_list(), starts.to_list(), ends.to_list())
    return out


def _windows(num_tokens, max_tokens, doc_stride):
    """(start, length) of the authors' doc spans: every `doc_stride` tokens until the end is covered."""
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def _max_context(spans, span_index, position):
    """The authors' rule: the window where the token has the most context on its shorter side wins."""
    best, best_index = None, None
    for i, (start, length) in enumerate(spans):
        if start <= position < start + length:
            score = min(position - start, start + length - 1 - position) + 0.01 * length
            if best is None or score > best:
                best, best_index = score, i
    return best_index == span_index


def featurize(examples, tokenizer, max_seq_length, doc_stride, max_query_length, training, version_2=True):
    """Yields the windows of every example: (feature dict of numpy arrays, `Window`).

    Training features carry `start_positions`, `end_positions` and
    `is_impossible`; a window that does not contain the answer points at
    [CLS] (position 0) and is impossible, or, with `version_2=False`
    (SQuAD 1.1, answerable by construction), is dropped. Examples whose answer text is
    not at its offset yield nothing in training (the reader reported them).
    """
    contexts = sorted({e.context for e in examples})
    context_tokens = dict(zip(contexts, _tokenize(tokenizer, contexts)))
    questions = _tokenize(tokenizer, [e.question for e in examples])
    for index, (example, (question_ids, _, _)) in enumerate(zip(examples, questions)):
        question_ids = question_ids[:max_query_length]
        ids, starts, ends = context_tokens[example.context]
        answer = None
        if training and not example.is_impossible:
            if not example.answer_at_offset:
                continue
            text, char_start = example.answers[0]
            inside = [i for i, (s, e) in enumerate(zip(starts, ends)) if s < char_start + len(text) and e > char_start]
            if not inside:
                continue
            answer = (inside[0], inside[-1])
        offset = len(question_ids) + 2
        spans = _windows(len(ids), max_seq_length - offset - 1, doc_stride)
        for span_index, (start, length) in enumerate(spans):
            input_ids = [tokenizer.cls_id] + question_ids + [tokenizer.sep_id] + ids[start:start + length] + [
                tokenizer.sep_id]
            features = {
                "input_ids": np.zeros(max_seq_length, np.int32), "input_mask": np.zeros(max_seq_length, np.int32),
                "segment_ids": np.zeros(max_seq_length, np.int32)}
            features["input_ids"][:len(input_ids)] = input_ids
            features["input_mask"][:len(input_ids)] = 1
            features["segment_ids"][offset:len(input_ids)] = 1
            if training:
                if answer is not None and start <= answer[0] and answer[1] < start + length:
                    positions, impossible = (answer[0] - start + offset, answer[1] - start + offset), 0
                elif not version_2:
                    continue  # SQuAD 1.1: a window without the answer teaches nothing.
                else:
                    positions, impossible = (0, 0), 1
                features.update(start_positions=np.int32(positions[0]), end_positions=np.int32(positions[1]),
                                is_impossible=np.int32(impossible))
            char_spans = np.full((max_seq_length, 2), -1, np.int64)
            max_context = np.zeros(max_seq_length, bool)
            for i in range(length):
                char_spans[offset + i] = (starts[start + i], ends[start + i])
                max_context[offset + i] = _max_context(spans, span_index, start + i)
            yield features, Window(index, char_spans, max_context)



TRAIN_FEATURES = ("input_ids", "input_mask", "segment_ids", "start_positions", "end_positions", "is_impossible")


def write_train_features(features, path):
    """Streams training features into a TFRecord file; returns how many were written.

    The file takes its name only once complete, so a killed run never leaves a half-written one.
    """
    count = 0
    with records.atomic_writer(path) as writer:
        for feature, _ in features:
            example = tf.train.Example(features=tf.train.Features(feature={
                k: tf.train.Feature(int64_list=tf.train.Int64List(value=np.atleast_1d(feature[k])))
                for k in TRAIN_FEATURES}))
            writer.write(example.SerializeToString())
            count += 1
    return count


def train_dataset(path, max_seq_length, batch_size, seed, input_context=None, start_step=0, num_features=None):
    """Shuffled, repeated training batches read from `write_train_features`'s file (never all in memory).

    The order is `input_order.record_stream`'s: a function of the seed and the
    position, so a resumed run continues at its example. `batch_size` is the
    global batch; `num_features`, the file's record count if known (resuming needs it).
    """
    spec = {k: tf.io.FixedLenFeature([max_seq_length] if k.startswith(("input", "segment")) else [], tf.int64)
            for k in TRAIN_FEATURES}
    stream = input_order.record_stream([path], seed, start_step * batch_size,
                                       None if num_features is None else {path: num_features})
    parse = lambda serialized: {k: tf.cast(v, tf.int32) for k, v in tf.io.parse_example(serialized, spec).items()}
    batches = input_order.replica_batches(stream, batch_size, input_context)
    return batches.map(parse).prefetch(tf.data.AUTOTUNE)


# --- Post-processing ---

def predict_answers(examples, windows, outputs, n_best_size=20, max_answer_length=30, version_2=True):
    """The best span of each question over all its windows, as text of the context.

    Spans start at a token whose window gives it the most context, end at or
    after the start within `max_answer_length` tokens, and lie in the
    context. A span's score is start logit + end logit (or, for the joint
    head, the start's and the conditioned end's log-probabilities).

    Args:
      examples: the `QAExample`s.
      windows: the `Window` of each feature, in feature order.
      outputs: dict of numpy arrays from the model, one row per feature:
        `start_logits`, `end_logits` [n, length] (joint head: `end_logits`
        [n, beam, length] with `start_top_index` [n, beam]), and for SQuAD 2.0
        `impossible_logits` [n] when the model has the no-answer classifier.

    Returns:
      (predictions, null_odds): {id: answer text}, and for SQuAD 2.0
      {id: how much more likely "no answer" is than the best span} (the
      official script's na_prob input; answer "" when above a threshold).
    """
    by_example = collections.defaultdict(list)
    for feature_index, window in enumerate(windows):
        by_example[window.example_index].append(feature_index)
    predictions, null_odds = {}, {}
    for example_index, example in enumerate(examples):
        best, best_null = None, None
        for f in by_example.get(example_index, []):
            window = windows[f]
            for score, start, end in _candidate_spans(outputs, f, n_best_size):
                if (window.char_spans[start, 0] < 0 or window.char_spans[end, 0] < 0 or end < start
                        or end - start + 1 > max_answer_length or not window.max_context[start]):
                    continue
                if best is None or score > best[0]:
                    best = (score, window.char_spans[start, 0], window.char_spans[end, 1])
            null = outputs["start_logits"][f][0] + _null_end(outputs, f)
            if "impossible_logits" in outputs:
                null += outputs["impossible_logits"][f]
            best_null = null if best_null is None else min(best_null, null)
        text = example.context[best[1]:best[2]] if best else ""
        predictions[example.qas_id] = text
        if version_2:
            null_odds[example.qas_id] = float(best_null - best[0]) if best else float("inf")
    return predictions, null_odds


def _null_end(outputs, f):
    end = outputs["end_logits"][f]
    return end[0] if end.ndim == 1 else end[0, 0]


def _candidate_spans(outputs, f, n_best_size):
    start_logits, end_logits = outputs["start_logits"][f], outputs["end_logits"][f]
    if end_logits.ndim == 2:  # Joint head: an end distribution for each of the beam's starts.
        for k, start in enumerate(outputs["start_top_index"][f][:n_best_size]):
            for end in np.argsort(end_logits[k])[::-1][:n_best_size]:
                yield start_logits[start] + end_logits[k, end], int(start), int(end)
        return
    starts = np.argsort(start_logits)[::-1][:n_best_size]
    ends = np.argsort(end_logits)[::-1][:n_best_size]
    for start in starts:
        for end in ends:
            yield start_logits[start] + end_logits[end], int(start), int(end)


def apply_threshold(predictions, null_odds, threshold):
    """SQuAD 2.0 answers: "" where the no-answer odds exceed `threshold`."""
    return {qid: "" if null_odds[qid] > threshold else text for qid, text in predictions.items()}


# --- The official evaluation (v1.1 and v2.0), re-implemented ---

def normalize_answer(text):
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (the official rule)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_score(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold, version_2=True):
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not predicted or not expected):  # v2.0: an empty answer scores 1 only against an empty one.
        return float(predicted == expected)
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(example, version_2):
    texts = example.gold_texts or [text for text, _ in example.answers]
    golds = [text for text in texts if not version_2 or normalize_answer(text)]
    return golds or [""]  # An unanswerable question's only gold answer is the empty one.


def evaluate(examples, predictions, version_2, null_odds=None):
    """EM and F1 (0-100) as the official scripts compute them.

    SQuAD 1.1: `exact_match`, `f1`. SQuAD 2.0: `exact`, `f1`, `total`,
    `HasAns_*` / `NoAns_*` and, given `null_odds`, `best_exact`, `best_f1`
    and their thresholds (the official script's na_prob sweep), with
    `exact_match` an alias of `exact`. MRQA sets score as SQuAD 1.1 (the
    MRQA official script is v1.1's over `gold_texts`).

    A question without a prediction scores 0, as in the official scripts. (The
    authors ran MRQA's with `--skip-no-answer`, which leaves it out of the
    denominator instead; `predict_answers` answers every question, so both
    give the same numbers for this package's predictions.)
    """
    exact, f1 = {}, {}
    for example in examples:
        if example.qas_id not in predictions:
            logging.warning("no prediction for question %s: it scores 0", example.qas_id)
            exact[example.qas_id] = f1[example.qas_id] = 0.0
            continue
        golds, prediction = _gold_answers(example, version_2), predictions[example.qas_id]
        exact[example.qas_id] = max(exact_score(prediction, g) for g in golds)
        f1[example.qas_id] = max(f1_score(prediction, g, version_2) for g in golds)
    total = len(examples)
    result = {"exact_match": 100 * sum(exact.values()) / total, "f1": 100 * sum(f1.values()) / total}
    if not version_2:
        return result
    result = {"exact": result["exact_match"], "f1": result["f1"], "total": total, "exact_match": result["exact_match"]}
    for name, subset in (("HasAns", [e for e in examples if e.answers]),
                         ("NoAns", [e for e in examples if not e.answers])):
        if subset:
            result[f"{name}_exact"] = 100 * sum(exact[e.qas_id] for e in subset) / len(subset)
            result[f"{name}_f1"] = 100 * sum(f1[e.qas_id] for e in subset) / len(subset)
            result[f"{name}_total"] = len(subset)
    if null_odds is not None:
        for name, scores in (("exact", exact), ("f1", f1)):
            result[f"best_{name}"], result[f"best_{name}_thresh"] = _best_threshold(
                examples, predictions, scores, null_odds)
    return result


def _best_threshold(examples, predictions, scores, null_odds):
    """The official sweep: answer "" for every question whose no-answer odds exceed a threshold; best one wins."""
    answerable = {e.qas_id: bool(e.answers) for e in examples}
    # Start with every question answered "": only unanswerable ones score.
    current = best = sum(1.0 for e in examples if not e.answers)
    best_threshold = 0.0
    for qid in sorted(null_odds, key=lambda q: null_odds[q]):
        if qid not in scores:
            continue
        if answerable[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1.0
        if current > best:
            best, best_threshold = current, null_odds[qid]
    return 100 * best / len(examples), best_threshold
