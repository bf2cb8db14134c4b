"""TensorFlow Lite models for phones and other devices.

One export writes two `.tflite` files of a discriminator, classifier or tagger:

- `text.tflite` takes raw text: a string tensor `text` (and `text_pair` for
  pair tasks) of shape [1], one example per call. It tokenizes with tf-text's
  `FastBertTokenizer` (the ops `FastBertNormalize` and `FastWordpieceTokenize`,
  which have TFLite kernels) and packs and truncates to `max_seq_length` as the
  SavedModel does. Run it with tf-text's kernels registered:
  `InterpreterWithCustomOps(custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS)`.
- `ids.tflite` takes int32 `input_ids`, `input_mask`, `segment_ids`
  [batch, length] (at most `max_seq_length` long) and holds TFLite built-in ops
  only: any TFLite runtime runs it.

The outputs are the SavedModel's (`export.ServingModule`) for the same ids:
per-token `replaced_probability` (discriminator), `probabilities`, `logits`,
`label` (classifier) or `score` (regressor), per-token `tags`, `scores`,
`logits` (tagger); `text.tflite` adds the `input_ids` it fed the model. A
tagger's `text.tflite` tags word-pieces of the first `max_seq_length` tokens:
a word's tag is that of its first piece (the piece not starting with "##").

Raw text is normalised by tf-text's BERT normaliser, because the SavedModel's
(`tokenization.normalize`: regular expressions, `StringLower`, `NormalizeUTF8`)
has no TFLite kernels. The two give the same ids (tested) except where Unicode
case folding differs from Python's `str.lower()` ('ß' -> 'ss', final 'ς' ->
'σ', '…' -> '...') and where a word holds an ASCII control character (BERT
drops it, tf-text splits the word there) or U+FFFD (BERT drops it, tf-text
makes the word [UNK]).

The model is exported through Keras' `ExportArchive` before conversion: a
Keras 3 model saved through a plain `tf.Module` converts without error but
without its weights.

Example:
```python
paths = export_tflite("runs/sst/trial_1", "exports", kind="classifier")
interpreter = InterpreterWithCustomOps(model_path=paths["text"],
                                       custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
interpreter.get_signature_runner()(text=np.array(["a gripping film"]))["probabilities"]
```
"""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.lite.python import interpreter as interpreter_lib

from electra_tf import export
from electra_tf import tokenization

KINDS = ("discriminator", "classifier", "tagger")
QUANTIZATIONS = ("none", "dynamic_int8")
FILES = {"text": "text.tflite", "ids": "ids.tflite"}


class DeviceTextEncoder(tf.Module):
    """Raw text to the model's features with ops that TFLite runs (tf-text's, and built-ins).

    Takes one example (string tensors of shape [1]) and returns features
    [1, length] without padding: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`,
    truncated to `max_seq_length` as `tokenization.pack_inputs` does.

    Args:
      vocab: the WordPiece vocabulary (a list of tokens).
      max_seq_length: the most tokens per example, specials included.
      lower_case: BERT uncased normalisation (lower-case, strip accents).

    Example:
    ```python
    encoder = DeviceTextEncoder(tokenizer.vocab, 128)
    features = encoder([tf.constant(["Hello world!"])])  # input_ids [[101, 7592, 2088, 999, 102]]
    ```
    """

    def __init__(self, vocab, max_seq_length, lower_case=True, name="device_text_encoder"):
        super().__init__(name=name)
        self.max_seq_length = max_seq_length
        self._cls_id, self._sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
        self._tokenizer = tf_text.FastBertTokenizer(
            list(vocab), token_out_type=tf.int32, unknown_token="[UNK]", lower_case_nfd_strip_accents=lower_case)

    def tokenize(self, text):
        """The ids of one text (shape [1]), [tokens]."""
        return self._tokenizer.tokenize(text).flat_values

    def __call__(self, texts):
        pieces = [self.tokenize(text) for text in texts]
        kept = tokenization.truncated_lengths([tf.shape(p, out_type=tf.int64)[0] for p in pieces],
                                              self.max_seq_length - 1 - len(texts))
        ids, segments = [tf.constant([self._cls_id])], [tf.constant([0])]
        for segment, (piece, keep) in enumerate(zip(pieces, kept)):
            ids += [piece[:keep], tf.constant([self._sep_id])]
            segments.append(tf.fill([tf.cast(keep, tf.int32) + 1], segment))
        ids = tf.concat(ids, 0)[None]
        return {"input_ids": ids, "input_mask": tf.ones_like(ids), "segment_ids": tf.concat(segments, 0)[None]}


def write_archive(module, path):
    """Writes `module`'s model with the endpoints `text` and `ids` as a Keras `ExportArchive` SavedModel.

    Args:
      module: an `export.ServingModule` of one of `KINDS`.
      path: the SavedModel's directory.

    Returns:
      The `DeviceTextEncoder` the `text` endpoint uses.
    """
    encoder = DeviceTextEncoder(module.tokenizer.vocab, module._length, module.tokenizer.lower_case)

    def from_text(*texts):
        features = encoder(texts)
        return dict(module._outputs(features), input_ids=features["input_ids"])

    def from_ids(input_ids, input_mask, segment_ids):
        return module._outputs({"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids})

    archive = keras.export.ExportArchive()
    archive.track(module.model)
    archive.add_endpoint("text", from_text, input_signature=[
        tf.TensorSpec([1], tf.string, name=name) for name in module._text_inputs])
    archive.add_endpoint("ids", from_ids, input_signature=[
        tf.TensorSpec([None, None], tf.int32, name=name) for name in export.ID_FEATURES])
    archive.write_out(path, verbose=False)
    return encoder


def convert(saved_model_dir, endpoint, quantize="none"):
    """The `.tflite` bytes of one endpoint of a `write_archive` SavedModel.

    Only TFLite built-in ops are allowed, plus tf-text's custom ops for `text`:
    no Select TF ops (Flex), which would need TensorFlow's kernels on the device.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[endpoint])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = endpoint == "text"
    if quantize == "dynamic_int8":  # Weights in int8, activations quantized on the fly.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def load_interpreter(path):
    """A TFLite interpreter for a `text.tflite` (tf-text's kernels registered) or an `ids.tflite`."""
    return interpreter_lib.InterpreterWithCustomOps(
        model_path=path, custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)


def export_tflite(model_dir, export_dir, kind, model_name=None, max_seq_length=None, quantize="none"):
    """Writes `<export_dir>/<model_name>/` with `text.tflite`, `ids.tflite`, `vocab.txt` and `export.json`.

    Args:
      model_dir, kind, max_seq_length: as `export.load_serving_module`; `kind`
        is one of `KINDS`.
      export_dir: where the model's folder goes.
      model_name: defaults to `electra_<kind>_tflite`, plus `_int8` when quantized.
      quantize: one of `QUANTIZATIONS`; `dynamic_int8` stores the weights in int8.

    Returns:
      {"text": path, "ids": path, "dir": the folder}.
    """
    if kind not in KINDS:
        raise ValueError(f"--format=tflite exports --kind in {KINDS}, not {kind!r} (export it as a SavedModel)")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize={quantize!r}: choose one of {QUANTIZATIONS}")
    name = model_name or f"electra_{kind}_tflite" + ("_int8" if quantize == "dynamic_int8" else "")
    path = os.path.join(export_dir, name)
    if os.path.exists(path):
        raise ValueError(f"{path} exists: pass another --model_name or remove it")
    keras.mixed_precision.set_global_policy("float32")
    module = export.load_serving_module(model_dir, kind, max_seq_length)
    os.makedirs(export_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=export_dir)
    try:
        archive = os.path.join(staging, "saved_model")
        write_archive(module, archive)
        for endpoint, file_name in FILES.items():
            with open(os.path.join(staging, file_name), "wb") as f:
                f.write(convert(archive, endpoint, quantize))
        shutil.rmtree(archive)
        shutil.copyfile(module.vocab_asset.asset_path.numpy().decode(), os.path.join(staging, "vocab.txt"))
        with open(os.path.join(staging, "export.json"), "w") as f:
            json.dump({"kind": kind, "max_seq_length": module._length, "quantize": quantize,
                       "text_inputs": list(module._text_inputs), "labels": module._labels,
                       "lower_case": module.tokenizer.lower_case}, f, indent=2)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"dir": path, **{endpoint: os.path.join(path, file_name) for endpoint, file_name in FILES.items()}}
