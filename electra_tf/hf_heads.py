"""Fine-tuned heads to and from Hugging Face's ElectraFor{SequenceClassification,TokenClassification,QuestionAnswering}.

Works on the canonical arrays of `checkpoint_interop` (authors' layout,
kernels [in, out]); Hugging Face's head tensors appear there under their own
path, `classifier/dense/kernel`, `classifier/out_proj/kernel` (sequence
classification), `classifier/kernel` (token classification) and
`qa_outputs/kernel` (question answering). electra_tf's heads are named
relative to `task_specific/<task>/`, as `head_variables` returns them.

- Tagger: one dense over every position, in both.
- Question answering: Hugging Face's `qa_outputs` (H -> 2) is the start and
  end dense of the non-joint head. The authors' start-conditioned end head and
  the answerability classifier have no counterpart there. electra_tf adds -1e4
  to the logits of positions outside the context and [CLS]; Hugging Face does
  not, so the logits agree at the allowed positions only.
- Classifier: Hugging Face's `ElectraClassificationHead` is
  dense(H, H) -> GELU -> dropout -> out_proj, the authors' one dense. The
  authors' head is written exactly into that shape: dense = identity with a
  per-unit bias shift c, and out_proj = the authors' kernel with bias
  b - c @ kernel. The encoder's output is the last layer's LayerNorm output,
  so unit i is at most |gamma_i| sqrt(H) + |beta_i| in magnitude; c_i exceeds
  that by `_GELU_MARGIN`, where float32 GELU (erf form) is the identity
  (gelu(z) == z for z >= 5.35). What remains is float32 rounding of x + c and of
  the bias compensation (about 1e-6 on the logits). Such a head reads back as the authors' one
  dense; any other Hugging Face classifier head runs as `classifier_head="hf"`.

Example:
```python
arrays = checkpoint_interop.read_checkpoint("hf_sst2", "hf")
hf = read_hf_config("hf_sst2")
info = task_info(hf, arrays)            # {"task", "kind", "labels", ...}, as task.json
head, classifier_head = head_from_hf(hf, arrays)
```
"""

import json
import os

import numpy as np

ARCHITECTURES = {"classifier": "ElectraForSequenceClassification", "tagger": "ElectraForTokenClassification",
                 "squad": "ElectraForQuestionAnswering"}
# Hugging Face's names of each kind's head (under the canonical names).
_HF_HEADS = {"classifier": "classifier/out_proj/", "tagger": "classifier/kernel", "squad": "qa_outputs/"}
HF_HEAD_PREFIXES = ("classifier/", "qa_outputs/")
# gelu(z) == z in float32 (torch's and TF's erf GELU) from z = 5.35 on; the shift keeps x + c above 8.
_GELU_MARGIN = 8.0
# What task a head from elsewhere is recorded as: electra_tf's generic tasks of its kind.
_GENERIC_TASKS = {"classifier": "text_classification", "regressor": "text_regression", "tagger": "tagging",
                  "squad": "squadv1"}
# The config.json key under which an electra_tf export keeps its task.json (text pairs, SQuAD version).
TASK_KEY = "electra_tf_task"


def read_hf_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def hf_kind(hf_config, arrays):
    """`classifier`, `tagger` or `squad` for a Hugging Face fine-tuned model, None for one without a task head."""
    architectures = hf_config.get("architectures")
    if architectures:  # BERT's classifiers sit on its pooler, which ELECTRA has not: they are none of these.
        return next((kind for kind, name in ARCHITECTURES.items() if name in architectures), None)
    for kind, prefix in _HF_HEADS.items():
        if any(name.startswith(prefix) for name in arrays):
            return kind
    return None


def _layer_norm_bound(arrays, num_layers):
    """The largest magnitude each unit of the encoder's output (the last post-LayerNorm) can take."""
    prefix = f"electra/encoder/layer_{num_layers - 1}/output/LayerNorm/"
    gamma, beta = (arrays[prefix + leaf].astype(np.float64) for leaf in ("gamma", "beta"))
    # A normalised vector of H units has squared norm at most H, so no unit exceeds sqrt(H).
    return np.abs(gamma) * np.sqrt(gamma.shape[0]) + np.abs(beta)


def _exported_shift(dense_kernel, dense_bias, arrays, num_layers):
    """The shift c when an HF classifier's dense is the identity construction of `head_to_hf`, else None."""
    size = dense_kernel.shape[0]
    if dense_kernel.shape != (size, size) or not np.array_equal(dense_kernel, np.eye(size, dtype=dense_kernel.dtype)):
        return None
    bias = dense_bias.astype(np.float64)
    return bias if np.all(bias >= _layer_norm_bound(arrays, num_layers) + 6.0) else None


def head_from_hf(hf_config, arrays):
    """A Hugging Face task head as electra_tf's: ({name relative to task_specific/<task>/: array}, classifier_head).

    Args:
      hf_config: the model dir's config.json as a dict.
      arrays: `checkpoint_interop.read_checkpoint(model_dir, "hf")`.

    Returns:
      The head's arrays (empty without a task head) and the config's
      `classifier_head` it needs (`authors` unless a general HF classifier head).
    """
    kind = hf_kind(hf_config, arrays)
    if kind == "tagger":
        return {"dense/kernel": arrays["classifier/kernel"], "dense/bias": arrays["classifier/bias"]}, "authors"
    if kind == "squad":
        kernel, bias = arrays["qa_outputs/kernel"], arrays["qa_outputs/bias"]
        if kernel.shape[1] != 2:
            raise ValueError(f"qa_outputs has {kernel.shape[1]} outputs; a start/end head has 2")
        return {"start_logits/kernel": kernel[:, :1], "start_logits/bias": bias[:1],
                "end_logits/kernel": kernel[:, 1:], "end_logits/bias": bias[1:]}, "authors"
    if kind != "classifier":
        return {}, "authors"
    dense_kernel, dense_bias = arrays["classifier/dense/kernel"], arrays["classifier/dense/bias"]
    out_kernel, out_bias = arrays["classifier/out_proj/kernel"], arrays["classifier/out_proj/bias"]
    shift = _exported_shift(dense_kernel, dense_bias, arrays, hf_config["num_hidden_layers"])
    if shift is None:
        return {"classifier/dense/kernel": dense_kernel, "classifier/dense/bias": dense_bias,
                "classifier/out_proj/kernel": out_kernel, "classifier/out_proj/bias": out_bias}, "hf"
    bias = out_bias.astype(np.float64) + shift @ out_kernel.astype(np.float64)
    return {"dense/kernel": out_kernel, "dense/bias": bias.astype(np.float32)}, "authors"


def generic_labels(labels):
    """Hugging Face's default names, LABEL_0, LABEL_1, ...: the config does not say what the classes are."""
    return [f"LABEL_{i}" for i in range(len(labels))] == list(labels)


def hf_labels(hf_config):
    """The class names of a Hugging Face classifier or tagger in id order (None: regression or unnamed)."""
    if hf_config.get("problem_type") == "regression":
        return None
    id2label = hf_config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    return None if not labels or generic_labels(labels) else labels


def task_info(hf_config, arrays):
    """The task.json of a Hugging Face fine-tuned model (None without a task head).

    An electra_tf export carries its own (under `TASK_KEY`). A model from
    elsewhere becomes electra_tf's generic task of its kind
    (`text_classification`, `text_regression`, `tagging`, `squadv1`): its config
    does not say whether a classifier reads text pairs (taken as single texts) or
    whether a QA model was trained on SQuAD 2.0 (taken as 1.1).
    """
    if TASK_KEY in hf_config:
        return dict(hf_config[TASK_KEY])
    kind = hf_kind(hf_config, arrays)
    if kind is None:
        return None
    if kind == "squad":
        return {"task": _GENERIC_TASKS[kind], "kind": kind, "version_2": False, "joint": False, "answerable": False}
    num_labels = (arrays["classifier/out_proj/kernel"] if kind == "classifier" else arrays["classifier/kernel"]).shape[1]
    regression = kind == "classifier" and (hf_config.get("problem_type") == "regression" or num_labels == 1)
    labels = None if regression else hf_labels(hf_config) or [f"LABEL_{i}" for i in range(num_labels)]
    if kind == "tagger":
        return {"task": _GENERIC_TASKS[kind], "kind": kind, "labels": labels, "scheme": "token"}
    return {"task": _GENERIC_TASKS["regressor" if regression else kind], "kind": kind, "labels": labels,
            "text_pair": False}


def head_to_hf(info, head, arrays, num_layers):
    """electra_tf's fine-tuned head as Hugging Face's: (arrays under HF's head names, config.json fields).

    Args:
      info: the model dir's task.json.
      head: {name relative to task_specific/<task>/: array}.
      arrays: the encoder's canonical arrays (for the last LayerNorm).
      num_layers: the encoder's depth.

    Raises:
      ValueError for the authors' joint SQuAD head or answerability classifier,
      which `ElectraForQuestionAnswering` cannot express.
    """
    kind = info["kind"]
    fields = {"architectures": [ARCHITECTURES[kind]], TASK_KEY: info, "finetuning_task": info["task"]}
    if kind == "squad":
        if info.get("joint") or info.get("answerable"):
            parts = [part for part, on in (("the joint start-conditioned end head (--joint_prediction)",
                                            info.get("joint")),
                                           ("the answerability classifier (--answerable_classifier)",
                                            info.get("answerable"))) if on]
            raise ValueError(f"this {info['task']} model has {' and '.join(parts)}; Hugging Face's "
                             "ElectraForQuestionAnswering has only independent start and end logits (qa_outputs), "
                             "so it cannot hold them: fine-tune with --joint_prediction=false "
                             "--answerable_classifier=false to export to Hugging Face")
        kernel = np.concatenate([head["start_logits/kernel"], head["end_logits/kernel"]], axis=1)
        bias = np.concatenate([head["start_logits/bias"], head["end_logits/bias"]])
        return {"qa_outputs/kernel": kernel, "qa_outputs/bias": bias}, dict(fields, num_labels=2)
    labels = info["labels"]
    if labels is None:
        fields.update(num_labels=1, problem_type="regression", id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    else:
        fields.update(num_labels=len(labels), id2label={str(i): label for i, label in enumerate(labels)},
                      label2id={label: i for i, label in enumerate(labels)})
        if kind == "classifier":
            fields["problem_type"] = "single_label_classification"
    if kind == "tagger":
        return {"classifier/kernel": head["dense/kernel"], "classifier/bias": head["dense/bias"]}, fields
    if "classifier/out_proj/kernel" in head:  # Already Hugging Face's two-layer head.
        return dict(head), fields
    kernel = head["dense/kernel"].astype(np.float64)
    shift = (_layer_norm_bound(arrays, num_layers) + _GELU_MARGIN).astype(np.float32)
    out_bias = head["dense/bias"].astype(np.float64) - shift.astype(np.float64) @ kernel  # The shift as stored.
    size = kernel.shape[0]
    return {"classifier/dense/kernel": np.eye(size, dtype=np.float32), "classifier/dense/bias": shift,
            "classifier/out_proj/kernel": head["dense/kernel"],
            "classifier/out_proj/bias": out_bias.astype(np.float32)}, fields
