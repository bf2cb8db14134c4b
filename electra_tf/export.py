"""SavedModels for TF Serving that take raw text.

The tokenizer (tf-text's WordPiece with BERT's normalisation), the authors'
packing and truncation, and the model are one graph, so a client sends
strings and gets labels or per-token scores back: nobody re-implements
WordPiece in a client. The graph holds only TF core and TF Text ops, which
stock TF Serving ships. Each export has two signatures:

- `serving_default`: string tensors `text` (and `text_pair` for pair tasks);
- `encoded`: int32 `input_ids`, `input_mask`, `segment_ids` [batch, length]
  for clients that tokenize themselves (at most `max_seq_length` long).

An Electric scorer (`electric_scorer`, from an objective=electric pre-training
run) returns each text's pseudo-log-likelihood, `sum_t -E(x)_t`, and the
per-token terms.

A tagger splits each text into words as BERT's basic tokenizer does
(whitespace, punctuation, CJK characters), tags every word on its first
word-piece as fine-tuning did, in windows of whole words when a text is
longer than `max_seq_length`, and returns the words with their tags and scores.

The vocab (an asset and a constant), `max_seq_length`, the kind and the label
names travel inside the SavedModel. It is written as TF Serving expects,
`<export_dir>/<model_name>/<version>/`, into a temporary folder first and then
renamed, so a server polling the folder never loads a half-written version.

Example:
```python
path = export_model("runs/sst/trial_1", "exports", kind="classifier")
served = tf.saved_model.load(path)  # after `import tensorflow_text`
served.signatures["serving_default"](text=tf.constant(["a gripping film"]))
```
"""

import base64
import os
import shutil

import json

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf import checkpoint_interop
from electra_tf import config as config_lib
from electra_tf import electric
from electra_tf import finetuning
from electra_tf import masking
from electra_tf import modeling
from electra_tf import tasks
from electra_tf import tokenization

KINDS = ("discriminator", "classifier", "squad", "tagger", "electric_scorer")
ID_FEATURES = ("input_ids", "input_mask", "segment_ids")


class ServingModule(tf.Module):
    """A model with its tokenizer, as one exportable object.

    Args:
      model: a `modeling.FeaturesModel` with its weights loaded.
      tokenizer: the model's `tokenization.WordPieceTokenizer`.
      vocab_file: shipped as the SavedModel's asset `vocab.txt`.
      kind: one of `KINDS`.
      text_inputs: `("text",)` or `("text", "text_pair")`.
      max_seq_length: longer inputs are truncated (text) or refused (ids).
      labels: class names (classifier) or tags (tagger), or None.
      qa: for `squad`, dict of `max_query_length`, `max_answer_length`,
        `version_2` and `null_threshold` (answer "" above these no-answer odds).
    """

    def __init__(self, model, tokenizer, vocab_file, kind, text_inputs, max_seq_length, labels=None, qa=None):
        super().__init__(name=f"electra_{kind}")
        self.model = model
        # Keras 3 layers are not nodes of TF's object graph: list the variables so they are saved.
        self.model_variables = list(model.weights)
        self.tokenizer = tokenizer
        self.vocab_asset = tf.saved_model.Asset(vocab_file)
        self.vocab = tf.constant(tokenizer.vocab)
        self.kind = tf.Variable(kind, trainable=False)
        self.max_seq_length = tf.Variable(max_seq_length, trainable=False, dtype=tf.int32)
        self.label_names = tf.Variable(list(labels or []), trainable=False, dtype=tf.string)
        self._kind, self._text_inputs, self._length, self._labels = kind, text_inputs, max_seq_length, labels
        self._qa = qa

    def from_text(self, texts):
        if self._kind == "squad":
            return self._answer(texts["question"], texts["context"])
        if self._kind == "tagger":
            return self._tag_words(texts["text"])
        ids, segments, truncated = tokenization.pack_inputs(
            self.tokenizer, [texts[name] for name in self._text_inputs], self._length)
        features = {"input_ids": ids.to_tensor(), "segment_ids": segments.to_tensor(),
                    "input_mask": tf.ones_like(ids).to_tensor()}
        outputs = self._outputs(features)
        if self._kind == "electric_scorer":  # A cut sentence's score is not comparable with the others'.
            outputs["truncated"] = truncated
        return outputs

    def from_ids(self, features):
        length = tf.shape(features["input_ids"])[1]
        check = tf.debugging.assert_less_equal(
            length, self._length, message=f"input_ids are longer than the exported max_seq_length={self._length}")
        with tf.control_dependencies([check]):
            return self._outputs({k: tf.identity(features[k]) for k in ID_FEATURES})

    def _outputs(self, features):
        logits = self.model(features, training=False)
        if self._kind == "squad":  # Clients that tokenize themselves post-process the logits themselves.
            return logits
        if self._kind == "discriminator":
            mask = features["input_mask"]
            real = mask > 0
            # Padding reads the "" after the vocabulary: TFLite has no select of strings.
            blank = tf.where(real, features["input_ids"], self.tokenizer.vocab_size)
            return {"tokens": tf.gather(tf.concat([self.vocab, [""]], 0), blank),
                    "replaced_probability": tf.where(real, tf.sigmoid(logits), 0.0),
                    "input_mask": mask}
        if self._kind == "electric_scorer":  # The energies are `logits`; a token's score is -E.
            mask = features["input_mask"]
            special_ids = [self.tokenizer.cls_id, self.tokenizer.sep_id, self.tokenizer.mask_id]
            scored = masking.candidate_mask(features["input_ids"], mask, special_ids)
            return {"score": electric.sentence_scores(logits, features["input_ids"], mask, special_ids),
                    "tokens": tf.where(mask > 0, tf.gather(self.vocab, features["input_ids"]), ""),
                    "token_scores": tf.where(scored, -logits, 0.0), "input_mask": mask}
        if self._kind == "tagger":  # Per token: clients that tokenize themselves read each word's first piece.
            return {"tags": tf.gather(tf.constant(self._labels), tf.argmax(logits, axis=-1)),
                    "scores": tf.reduce_max(tf.nn.softmax(logits), axis=-1), "logits": logits}
        if self._labels is None:
            return {"score": logits}
        batch = tf.shape(logits)[0]
        labels = tf.constant(self._labels)
        return {"probabilities": tf.nn.softmax(logits), "logits": logits,
                "label": tf.gather(labels, tf.argmax(logits, axis=-1)),
                # TF Serving's row format needs every output batched: the names are repeated per row.
                "label_names": tf.tile(labels[None], [batch, 1])}

    def _tag_words(self, text):
        """Each text's words (BERT's basic split), their tags and the tags' probabilities, padded to the most words.

        Windows, [UNK] for a word without pieces and the cut of a word longer
        than a window follow `tagging.featurize`, so a text gets the tags
        fine-tuning's evaluation gave the same words.
        """
        words = tokenization.basic_words(text)
        budget = self._length - 2
        unk = self.tokenizer.unk_id
        pieces = self.tokenizer(words.flat_values)
        counts = tf.clip_by_value(pieces.row_lengths(), 1, budget)
        padded = tf.concat([pieces.to_tensor(default_value=unk), tf.fill([tf.shape(counts)[0], 1], unk)], axis=1)
        pieces = tf.RaggedTensor.from_tensor(padded, lengths=counts)
        # Whole words fill a window until the next one does not fit (`tagging.window_spans`); a text starts anew.
        first = tf.range(tf.shape(counts, out_type=tf.int64)[0]) == tf.gather(words.row_starts(), words.value_rowids())

        def place(state, word):
            window, used = state
            count, starts_text = word
            new = starts_text | (used + count > budget)
            return window + tf.cast(new, tf.int64), tf.where(new, count, used + count)

        window, _ = tf.scan(place, (counts, first), initializer=(tf.constant(-1, tf.int64), tf.constant(0, tf.int64)))
        # One [CLS] [SEP] row more than the windows, so that a batch without words still runs the model.
        num_windows = tf.reduce_max(tf.concat([window, [-1]], 0)) + 1
        rows = tf.RaggedTensor.from_value_rowids(pieces.flat_values, tf.gather(window, pieces.value_rowids()),
                                                 nrows=num_windows + 1)
        ids, _ = tf_text.combine_segments([rows], self.tokenizer.cls_id, self.tokenizer.sep_id)
        logits = self.model({"input_ids": ids.to_tensor(), "input_mask": tf.ones_like(ids).to_tensor(),
                             "segment_ids": tf.zeros_like(ids).to_tensor()}, training=False)
        starts = tf.cumsum(counts, exclusive=True)
        position = 1 + starts - tf.gather(tf.math.unsorted_segment_min(starts, window, num_windows), window)
        probabilities = tf.nn.softmax(tf.gather_nd(logits, tf.stack([window, position], axis=1)))
        tags = tf.gather(tf.constant(self._labels), tf.argmax(probabilities, axis=-1))
        return {"words": words.to_tensor(""), "tags": words.with_flat_values(tags).to_tensor(""),
                "scores": words.with_flat_values(tf.reduce_max(probabilities, axis=-1)).to_tensor(0.0),
                "num_words": tf.cast(words.row_lengths(), tf.int32)}

    def _answer(self, question, context):
        """The best span of the context's first window: text, character offsets, score (and no-answer odds)."""
        qa = self._qa
        context = tf.strings.unicode_transcode(context, "UTF-8", "UTF-8", errors="replace")
        question_ids = self.tokenizer(question)[:, :qa["max_query_length"]]
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(context)
        keep = tf.minimum(ids.row_lengths(), self._length - 3 - question_ids.row_lengths())
        ids, starts, ends = (tf.RaggedTensor.from_tensor(t.to_tensor(), lengths=keep) for t in (ids, starts, ends))
        input_ids, segment_ids = tf_text.combine_segments([question_ids, ids], self.tokenizer.cls_id,
                                                          self.tokenizer.sep_id)
        features = {"input_ids": input_ids.to_tensor(), "segment_ids": tf.cast(segment_ids.to_tensor(), tf.int32),
                    "input_mask": tf.ones_like(input_ids).to_tensor()}
        outputs = self.model(features, training=False)
        start, end = outputs["start_logits"], outputs["end_logits"]
        length = tf.shape(start)[1]
        first = question_ids.row_lengths() + 2  # Position of the first context token.
        position = tf.range(tf.cast(length, tf.int64))[None]
        in_context = (position >= first[:, None]) & (position < (first + keep)[:, None])
        if end.shape.rank == 3:  # Joint head: an end distribution for each of the beam's starts.
            top = tf.cast(outputs["start_top_index"], tf.int64)
            start_pos, start_score = top[:, :, None], tf.gather(start, top, batch_dims=1)[:, :, None]
            start_ok = tf.gather(in_context, top, batch_dims=1)[:, :, None]
            null_end = end[:, 0, 0]
        else:
            start_pos, start_score, start_ok = position[:, :, None], start[:, :, None], in_context[:, :, None]
            end, null_end = end[:, None, :], end[:, 0]
        end_pos = position[:, None, :]
        valid = start_ok & in_context[:, None, :] & (end_pos >= start_pos) & (
            end_pos - start_pos < qa["max_answer_length"])
        scores = tf.where(valid, start_score + end, -1e9)
        flat = tf.argmax(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=-1)
        width = tf.cast(tf.shape(scores)[2], tf.int64)
        best_start = tf.gather(tf.reshape(tf.broadcast_to(start_pos, tf.shape(scores, out_type=tf.int64)),
                                          [tf.shape(scores)[0], -1]), flat, batch_dims=1)
        best_end = flat % width
        score = tf.gather(tf.reshape(scores, [tf.shape(scores)[0], -1]), flat, batch_dims=1)
        found = score > -1e8
        char_start = tf.gather(starts.to_tensor(), tf.maximum(best_start - first, 0), batch_dims=1)
        char_end = tf.gather(ends.to_tensor(), tf.maximum(best_end - first, 0), batch_dims=1)
        result = {"score": tf.where(found, score, 0.0)}
        if qa["version_2"]:
            null = start[:, 0] + null_end + outputs.get("impossible_logits", 0.0)
            result["null_odds"] = null - score
            found &= result["null_odds"] <= qa["null_threshold"]
        result["start"] = tf.where(found, char_start, -1)
        result["end"] = tf.where(found, char_end, -1)
        result["answer"] = tf.where(found, tf.strings.substr(context, char_start, char_end - char_start,
                                                             unit="UTF8_CHAR"), "")
        return result

    def signatures(self):
        text_spec = {name: tf.TensorSpec([None], tf.string, name=name) for name in self._text_inputs}
        ids_spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ID_FEATURES}
        return {"serving_default": tf.function(self.from_text).get_concrete_function(text_spec),
                "encoded": tf.function(self.from_ids).get_concrete_function(ids_spec)}


def load_serving_module(model_dir, kind, max_seq_length=None):
    """Builds the `ServingModule` of an electra_tf model dir.

    Args:
      model_dir: for `discriminator`, a `run_pretraining.py` model dir or a
        `convert_checkpoint.py` output; for `electric_scorer`, an objective=electric
        `run_pretraining.py` model dir; for `classifier`, `squad` and `tagger`, a
        `run_finetuning.py` trial dir (`<model_dir>/trial_<k>`, which holds `task.json`).
      kind: one of `KINDS`.
      max_seq_length: overrides the config's (at most max_position_embeddings).
    """
    if kind not in KINDS:
        raise ValueError(f"--kind={kind!r}: choose one of {KINDS}")
    config_file = os.path.join(model_dir, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"--model_dir={model_dir} has no config.json: pass an electra_tf model dir (convert "
                         "other checkpoints with convert_checkpoint.py)")
    config = config_lib.ElectraConfig.from_json_file(config_file)
    if max_seq_length:
        config = config.replace(max_seq_length=max_seq_length)
    vocab_file = os.path.join(model_dir, "vocab.txt")
    tokenizer = tokenization.WordPieceTokenizer.for_config(vocab_file, config)
    labels, text_inputs, qa = None, ("text",), None
    if kind in ("discriminator", "electric_scorer"):
        # Electric's discriminator gives energies, not replaced-token logits: each run has its one kind.
        if (kind == "electric_scorer") != (config.objective == "electric"):
            right = "electric_scorer" if config.objective == "electric" else "discriminator"
            raise ValueError(f"--model_dir={model_dir} holds an objective={config.objective} model: "
                             f"pass --kind={right}")
        model = modeling.ElectraDiscriminator(config)
        model.build_variables()
        names = checkpoint_interop.encoder_names(model.encoder, "electra")
        names.update(checkpoint_interop.head_names(model.head, "discriminator_predictions"))
        ignore = electric.GENERATOR_PREFIXES if kind == "electric_scorer" else checkpoint_interop.GENERATOR_PREFIXES
    elif kind == "squad":
        task = tasks.read_task_file(model_dir)
        if task.get("kind") != "squad":
            raise ValueError(f"--model_dir={model_dir} holds a {task['task']} model, not a SQuAD one")
        model = finetuning.ElectraQuestionAnswering(config, task["task"], task["joint"], task["answerable"])
        model.build_variables()
        names, ignore, text_inputs = model.variable_names(), (), ("question", "context")
        qa = {"max_query_length": config.max_query_length, "max_answer_length": config.max_answer_length,
              "version_2": task["version_2"], "null_threshold": _tuned_threshold(model_dir)}
    elif kind == "tagger":
        task = tasks.read_task_file(model_dir)
        if task.get("kind") != "tagger":
            raise ValueError(f"--model_dir={model_dir} holds a {task['task']} model, not a tagger")
        labels = task["labels"]
        model = finetuning.ElectraTagger(config, len(labels), task["task"])
        model.build_variables()
        names, ignore = model.variable_names(), ()
    else:
        task = tasks.read_task_file(model_dir)
        if task.get("kind", "classifier") != "classifier":
            raise ValueError(f"--model_dir={model_dir} holds a {task['kind']} model: pass --kind={task['kind']}")
        labels = task["labels"]
        text_inputs = ("text", "text_pair") if task["text_pair"] else ("text",)
        model = finetuning.ElectraClassifier(config, len(labels) if labels else 1, task["task"],
                                             regression=labels is None)
        model.build_variables()
        names, ignore = model.variable_names(), ()
    try:
        checkpoint_interop.load_into(names, model_dir, ignore=ignore)
    except ValueError as e:
        raise ValueError(f"--model_dir={model_dir} cannot be exported as --kind={kind}: {e}") from e
    return ServingModule(model, tokenizer, vocab_file, kind, text_inputs, config.max_seq_length, labels, qa)


def _tuned_threshold(model_dir):
    """SQuAD 2.0's no-answer threshold tuned on dev by run_finetuning.py (0 if it did not evaluate)."""
    path = os.path.join(model_dir, "eval_results.json")
    if not os.path.exists(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f).get("best_threshold", 0.0))


def export_model(model_dir, export_dir, kind, model_name=None, version=None, max_seq_length=None):
    """Writes `<export_dir>/<model_name>/<version>/` for TF Serving and returns its path.

    Args:
      model_dir, kind, max_seq_length: as `load_serving_module`.
      export_dir: TF Serving's model base path is `<export_dir>/<model_name>`.
      model_name: defaults to `electra_<kind>`.
      version: a positive integer; defaults to one above the highest there.
    """
    keras.mixed_precision.set_global_policy("float32")  # Served in float32 whatever the training policy was.
    module = load_serving_module(model_dir, kind, max_seq_length)
    base = os.path.join(export_dir, model_name or f"electra_{kind}")
    existing = [int(d) for d in (os.listdir(base) if os.path.isdir(base) else []) if d.isdigit()]
    version = version or max(existing, default=0) + 1
    if version < 1:
        raise ValueError(f"--version must be positive, got {version}")
    path = os.path.join(base, str(version))
    if os.path.exists(path):
        raise ValueError(f"{path} exists: TF Serving versions are immutable; pass another --version")
    staging = os.path.join(base, f".tmp-{version}")
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(module, staging, signatures=module.signatures())
    os.rename(staging, path)
    return path


# --- TF Serving's REST API, for checking an export without the server ---

def _to_tensor(values, spec):
    if spec.dtype == tf.string:
        # JSON carries binary strings as {"b64": ...}, as TF Serving's REST API accepts them.
        decode = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8")
        return tf.constant(np.array([decode(v) for v in values], dtype=object))
    return tf.constant(values, dtype=spec.dtype)


def _to_json(value):
    value = value.numpy() if hasattr(value, "numpy") else value
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()
    return value.tolist()


def rest_predict(loaded, body):
    """Answers a TF Serving REST `:predict` body with a loaded SavedModel, as the server does.

    Row format `{"instances": [...]}` (a list of inputs, or of dicts of named
    inputs) answers `{"predictions": [...]}`, one entry per instance (a dict of
    outputs, or the value when there is one output). Columnar format
    `{"inputs": {...}}` (or a bare list for a single input) answers
    `{"outputs": {...}}`. `"signature_name"` picks the signature.
    """
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('a request has exactly one of "instances" (row format) or "inputs" (columnar format)')
    if "instances" in body:
        rows = body["instances"]
        if all(isinstance(r, dict) and "b64" not in r for r in rows):
            columns = {name: [r[name] for r in rows] for name in specs}
        elif len(specs) == 1:
            columns = {next(iter(specs)): rows}
        else:
            raise ValueError(f"instances must be objects with the inputs {sorted(specs)}")
    else:
        columns = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(specs)): body["inputs"]}
    missing = sorted(set(specs) - set(columns))
    if missing:
        raise ValueError(f"the request lacks the input(s) {missing}; this signature takes {sorted(specs)}")
    outputs = signature(**{name: _to_tensor(columns[name], spec) for name, spec in specs.items()})
    outputs = {name: _to_json(value) for name, value in outputs.items()}
    if "instances" in body:
        batch = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        return {"predictions": [{name: value[i] for name, value in outputs.items()} for i in range(batch)]}
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
