"""Fine-tuned heads to and from Hugging Face: equal logits in transformers' own classes, and back."""

import json
import os

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import script_errors  # noqa: E402
from electra_tf import checkpoint_interop as interop  # noqa: E402
from electra_tf import export, finetuning, hf_heads, tasks  # noqa: E402
from electra_tf.config import ElectraConfig  # noqa: E402

SMALL = dict(vocab_size=99, max_seq_length=24, max_position_embeddings=64)
TASKS = {
    "classifier": {"task": "mnli", "kind": "classifier", "labels": ["contradiction", "entailment", "neutral"],
                   "text_pair": True},
    "regressor": {"task": "sts", "kind": "classifier", "labels": None, "text_pair": True},
    "tagger": {"task": "chunk", "kind": "tagger", "labels": ["B-NP", "I-NP", "B-VP", "I-VP", "O"], "scheme": "iob2"},
    "squad": {"task": "squadv1", "kind": "squad", "version_2": False, "joint": False, "answerable": False},
}
HF_CLASSES = {"classifier": "ElectraForSequenceClassification", "tagger": "ElectraForTokenClassification",
              "squad": "ElectraForQuestionAnswering"}


@pytest.fixture
def vocab_file(tmp_path):
    """A vocab of SMALL's size, so a converted model also tokenizes (export checks the two agree)."""
    path = tmp_path / "vocab.txt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(SMALL["vocab_size"] - 5)]
    path.write_text("\n".join(words) + "\n")
    return str(path)


def _features(batch=3, length=20, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, SMALL["vocab_size"], (batch, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 14:] = 0  # Padding: the attention masks must agree too.
    ids *= mask
    segments = (np.arange(length)[None] >= 8).astype(np.int32).repeat(batch, 0) * mask
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def _fine_tuned(config, info, seed=0):
    """A task model with random weights, LayerNorms and biases included, so a mix-up cannot hide."""
    keras.utils.set_random_seed(seed)
    model = finetuning.model_for_task(config, info)
    rng = np.random.default_rng(seed)
    for name, v in model.variable_names().items():
        if "LayerNorm" in name or name.endswith("/bias") or name.startswith("task_specific/"):
            v.assign(v.numpy() + rng.normal(0, 0.3, v.shape).astype(np.float32))
    return model


def _write_fine_tuned(model_dir, config, info, model, vocab_file):
    interop.write_native(model_dir, config, vocab_file, model.variable_names())
    tasks.write_task_file(model_dir, info)


def _ours(model, features):
    out = model(features, training=False)
    if isinstance(out, dict):
        return np.stack([out["start_logits"].numpy(), out["end_logits"].numpy()], -1)
    return out.numpy()


def _hf(model_dir, kind, features):
    model = getattr(transformers, HF_CLASSES["classifier" if kind == "regressor" else kind]).from_pretrained(
        model_dir).eval()
    with torch.no_grad():
        out = model(**{"input_ids": torch.tensor(features["input_ids"], dtype=torch.long),
                       "attention_mask": torch.tensor(features["input_mask"]),
                       "token_type_ids": torch.tensor(features["segment_ids"], dtype=torch.long)})
    if kind == "squad":
        return np.stack([out.start_logits.numpy(), out.end_logits.numpy()], -1), model.config
    return (out.logits.numpy()[:, 0] if kind == "regressor" else out.logits.numpy()), model.config


def _allowed(features):
    """The positions electra_tf's QA head scores (context and [CLS]); it adds -1e4 elsewhere, HF does not."""
    allowed = (features["segment_ids"] * features["input_mask"]).astype(bool)
    allowed[:, 0] = True
    return allowed


def _close(kind, ours, theirs, features, atol):
    if kind == "squad":
        ours, theirs = ours[_allowed(features)], theirs[_allowed(features)]
    np.testing.assert_allclose(ours, theirs, atol=atol, rtol=0)


def test_fine_tuned_heads_convert_to_hf_with_equal_logits_and_back(tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", SMALL)
    features = _features()
    models, cases = {}, []
    for kind, info in TASKS.items():
        models[kind] = _fine_tuned(config, info)
        _write_fine_tuned(str(tmp_path / kind), config, info, models[kind], vocab_file)
        cases.append([f"--input={tmp_path / kind}", "--input_format=native", "--output_format=hf",
                      f"--output_dir={tmp_path / 'hf' / kind}"])
        cases.append([f"--input={tmp_path / 'hf' / kind}", "--input_format=hf", f"--output_dir={tmp_path / 'back' / kind}"])
    assert script_errors("convert_checkpoint.py", cases) == [""] * len(cases)

    for kind, info in TASKS.items():
        ours = _ours(models[kind], features)
        theirs, hf_config = _hf(str(tmp_path / "hf" / kind), kind, features)
        _close(kind, ours, theirs, features, atol=1e-4)
        if kind == "squad":  # Outside the allowed positions electra_tf's logits sit near -1e4, HF's do not.
            assert ours[~_allowed(features)].max() < -9e3 < theirs[~_allowed(features)].min()
        if info.get("labels"):
            assert hf_config.id2label == dict(enumerate(info["labels"])) and hf_config.num_labels == len(info["labels"])
        if kind == "classifier":  # What the dir is for: a pipeline, tokenizer included, answering with the labels.
            classify = transformers.pipeline("text-classification", model=str(tmp_path / "hf" / kind))
            answer = classify({"text": "word1 word2", "text_pair": "word3"})
            assert (answer[0] if isinstance(answer, list) else answer)["label"] in info["labels"]
        if kind == "regressor":
            assert hf_config.num_labels == 1 and hf_config.problem_type == "regression"

        # Back as an electra_tf fine-tuned model dir: the same task, the authors' head, the same weights.
        back = str(tmp_path / "back" / kind)
        assert tasks.read_task_file(back) == info
        back_config = ElectraConfig.from_json_file(os.path.join(back, "config.json"))
        assert back_config.classifier_head == "authors"
        reloaded = finetuning.model_for_task(back_config, info)
        interop.load_into(reloaded.variable_names(), back)
        source = interop.model_arrays(models[kind].variable_names())
        for name, value in interop.model_arrays(reloaded.variable_names()).items():
            np.testing.assert_allclose(value, source[name], atol=1e-5, rtol=0, err_msg=name)

        # Straight from the Hugging Face dir as --init_checkpoint: the head comes too.
        fresh = _fine_tuned(config, info, seed=1)
        assert finetuning.load_pretrained(fresh, str(tmp_path / "hf" / kind), info.get("labels")) == "hf"
        _close(kind, _ours(fresh, features), ours, features, atol=1e-5)


def test_single_dense_head_is_written_as_an_exact_identity_construction(tmp_path, vocab_file):
    """The shifted identity leaves no room: GELU is the identity there and the logits match to rounding."""
    config = ElectraConfig.from_size("tiny", SMALL)
    info = TASKS["classifier"]
    model = _fine_tuned(config, info)
    arrays = interop.model_arrays(model.variable_names())
    head = {n.split("/", 2)[2]: a for n, a in arrays.items() if n.startswith("task_specific/")}
    hf_head, _ = hf_heads.head_to_hf(info, head, arrays, config.num_hidden_layers)
    np.testing.assert_array_equal(hf_head["classifier/dense/kernel"], np.eye(config.hidden_size))
    hidden = model.encode(_features(), training=False)[:, 0].numpy()
    shifted = torch.tensor(hidden + hf_head["classifier/dense/bias"])
    assert shifted.min() > 5.35 and torch.equal(torch.nn.functional.gelu(shifted), shifted)
    logits = shifted.numpy() @ hf_head["classifier/out_proj/kernel"] + hf_head["classifier/out_proj/bias"]
    np.testing.assert_allclose(logits, _ours(model, _features()), atol=1e-4, rtol=0)


def _hf_classifier(model_dir, num_labels=2, labels=None):
    """A classifier as Hugging Face fine-tunes one: its own two-layer head, random but non-trivial."""
    torch.manual_seed(0)
    hf_config = transformers.ElectraConfig(
        vocab_size=SMALL["vocab_size"], embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
        intermediate_size=128, max_position_embeddings=64, num_labels=num_labels,
        **({"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}} if labels else {}))
    model = transformers.ElectraForSequenceClassification(hf_config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias") or name.startswith("classifier"):
                p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(model_dir)
    return model


def test_hf_trained_classifier_runs_here_with_its_two_layer_head_for_evaluation_and_export(tmp_path, vocab_file):
    hf_dir = str(tmp_path / "hf")
    _hf_classifier(hf_dir, labels=["negative", "positive"])
    features = _features()
    theirs, _ = _hf(hf_dir, "classifier", features)
    assert interop.architecture_of(hf_dir)["classifier_head"] == "hf"  # What run_finetuning.py's config takes.

    config = ElectraConfig.from_size("tiny", dict(SMALL, **interop.config_overrides_from_hf(hf_dir),
                                                  classifier_head="hf"))
    model = finetuning.ElectraClassifier(config, 2, "sst")
    model.build_variables()
    finetuning.load_pretrained(model, hf_dir, ["negative", "positive"])
    np.testing.assert_allclose(_ours(model, features), theirs, atol=1e-4, rtol=0)
    # A task whose training file shows the labels in another order gets the head's outputs in its order.
    finetuning.load_pretrained(model, hf_dir, ["positive", "negative"])
    np.testing.assert_allclose(_ours(model, features), theirs[:, ::-1], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"its head's labels \['negative', 'positive'\] are not the task's "
                                         r"\['bad', 'good'\]"):
        finetuning.load_pretrained(model, hf_dir, ["bad", "good"])

    # To an electra_tf model dir that export_model.py serves, and back to Hugging Face unchanged.
    native, again = str(tmp_path / "native"), str(tmp_path / "again")
    cases = [[f"--input={hf_dir}", "--input_format=hf", f"--output_dir={native}", f"--vocab_file={vocab_file}"],
             [f"--input={native}", "--input_format=native", "--output_format=hf", f"--output_dir={again}"]]
    assert script_errors("convert_checkpoint.py", cases) == ["", ""]
    assert tasks.read_task_file(native)["labels"] == ["negative", "positive"]
    assert json.load(open(os.path.join(native, "config.json")))["classifier_head"] == "hf"
    module = export.load_serving_module(native, "classifier")
    served = module.from_ids({k: features[k] for k in export.ID_FEATURES})
    np.testing.assert_allclose(served["logits"].numpy(), theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(_hf(again, "classifier", features)[0], theirs, atol=1e-5, rtol=0)


def test_heads_that_do_not_fit_are_errors_that_say_why(tmp_path):
    hf_dir = str(tmp_path / "hf3")
    _hf_classifier(hf_dir, num_labels=3)
    config = ElectraConfig.from_size("tiny", dict(SMALL, **interop.config_overrides_from_hf(hf_dir),
                                                  classifier_head="hf"))
    two = finetuning.ElectraClassifier(config, 2, "rte")
    two.build_variables()
    with pytest.raises(ValueError, match=r"--init_checkpoint=.*hf3: its rte head's classifier/out_proj/kernel has "
                                         r"shape \(64, 3\), this task's needs \(64, 2\): its labels do not fit the "
                                         r"task's \(3 outputs, the task has 2\)"):
        finetuning.load_pretrained(two, hf_dir, ["entailment", "not_entailment"])
    authors = finetuning.ElectraClassifier(config.replace(classifier_head="authors"), 3, "mnli")
    authors.build_variables()
    with pytest.raises(ValueError, match=r"holds a mnli head of \['classifier/dense/bias', .*this model's head is "
                                         r"\['dense/bias', 'dense/kernel'\] .*classifier_head"):
        finetuning.load_pretrained(authors, hf_dir)

    # The authors' SQuAD heads have no Hugging Face class to go to (electra-convert raises this error).
    small = ElectraConfig.from_size("tiny", dict(SMALL, qa_joint_hidden_size=8))
    info = dict(TASKS["squad"], task="squad", version_2=True, joint=True, answerable=True)
    arrays = interop.model_arrays(_fine_tuned(small, info).variable_names())
    head = {n.split("/", 2)[2]: a for n, a in arrays.items() if n.startswith("task_specific/")}
    with pytest.raises(ValueError, match=r"has the joint start-conditioned end head \(--joint_prediction\) and the "
                                         r"answerability classifier .*ElectraForQuestionAnswering has only "
                                         r"independent start and end logits"):
        hf_heads.head_to_hf(info, head, arrays, small.num_hidden_layers)
