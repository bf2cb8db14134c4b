"""Serving exports: TF Serving's layout, raw-text signatures equal to the Keras model, REST shapes, bad requests."""

import base64
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from conftest import make_pretrainer, run_script
from electra_tf import checkpoint_interop, export, finetuning, tagging, tasks, tokenization
from electra_tf.config import ElectraConfig

LENGTH = 32
TEXTS = ["The chef cooked the meal.", "Zoë's café served crème brûlée!", "",
         "ELECTRA trains a discriminator to detect which tokens a small generator replaced. " * 3,
         "Who wrote Hamlet?", "a"]
PAIRS = ["It is raining.", "Is it?", "A man plays a guitar on stage.", "", "short", "Two words" * 20]
# TF Serving bundles TF Text 2.12: newer TF Text ops (e.g. `TFText>RoundRobinTrim`) fail to load there.
SERVING_TEXT_OPS = {"FastBertNormalize", "FastWordpieceTokenizeWithOffsets", "NormalizeUTF8"}
TAGS = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]


def _write_classifier(model_dir, config, vocab_file, task):
    model = finetuning.ElectraClassifier(config, task.num_outputs, task.name, task.is_regression)
    model.build_variables()
    # Random heads give near-uniform answers; larger weights make the comparisons sharper.
    model.head.kernel.assign(model.head.kernel * 50.0)
    checkpoint_interop.write_native(model_dir, config, vocab_file, model.variable_names())
    tasks.write_task_file(model_dir, tasks.task_info(task))


@pytest.fixture(scope="module")
def exports(tmp_path_factory, vocab_file):
    root = tmp_path_factory.mktemp("exports")
    config = ElectraConfig.from_size("tiny", {"max_seq_length": LENGTH})
    pretrainer = make_pretrainer(config)
    checkpoint_interop.write_native(str(root / "pretrained"), config, vocab_file,
                                    checkpoint_interop.variable_names(pretrainer))
    _write_classifier(str(root / "sst"), config, vocab_file, tasks.get_task("sst"))
    _write_classifier(str(root / "sts"), config, vocab_file, tasks.get_task("sts"))
    qa = finetuning.ElectraQuestionAnswering(config, "squad", answerable=True)
    qa.build_variables()
    checkpoint_interop.write_native(str(root / "squad"), config, vocab_file, qa.variable_names())
    tasks.write_task_file(str(root / "squad"), {"task": "squad", "kind": "squad", "version_2": True,
                                                "joint": False, "answerable": True})
    tagger = finetuning.ElectraTagger(config, len(TAGS), "ner")
    tagger.build_variables()
    tagger.head.kernel.assign(tagger.head.kernel * 50.0)
    checkpoint_interop.write_native(str(root / "tagger"), config, vocab_file, tagger.variable_names())
    tasks.write_task_file(str(root / "tagger"), {"task": "ner", "kind": "tagger", "labels": TAGS, "scheme": "iob2"})
    done = run_script("export_model.py", f"--model_dir={root / 'pretrained'}", f"--export_dir={root / 'out'}",
                      "--kind=discriminator")
    assert done.returncode == 0, done.stderr[-3000:]
    paths = {"discriminator": str(root / "out" / "electra_discriminator" / "1"),
             "sst": export.export_model(str(root / "sst"), str(root / "out"), "classifier", "sst"),
             "sts": export.export_model(str(root / "sts"), str(root / "out"), "classifier", "sts"),
             "squad": export.export_model(str(root / "squad"), str(root / "out"), "squad", "squad"),
             "tagger": export.export_model(str(root / "tagger"), str(root / "out"), "tagger", "tagger")}
    return {"root": root, "paths": paths, "stdout": done.stdout, "config": config,
            "keras": {"discriminator": export.load_serving_module(str(root / "pretrained"), "discriminator").model,
                      "sst": export.load_serving_module(str(root / "sst"), "classifier").model,
                      "sts": export.load_serving_module(str(root / "sts"), "classifier").model,
                      "squad": export.load_serving_module(str(root / "squad"), "squad").model,
                      "tagger": export.load_serving_module(str(root / "tagger"), "tagger").model}}


@pytest.fixture(scope="module")
def loaded(exports):
    return {name: tf.saved_model.load(path) for name, path in exports["paths"].items()}


def test_tf_serving_layout_versions_signatures_and_ops(exports, vocab_file):
    path, root = exports["paths"]["discriminator"], exports["root"]
    assert sorted(os.listdir(path)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]
    assert open(os.path.join(path, "assets", "vocab.txt")).read() == open(vocab_file).read()
    assert "response: " in exports["stdout"] and '"tokens": ["[CLS]", "the", "chef"' in exports["stdout"]
    again = export.export_model(str(root / "pretrained"), str(root / "out"), "discriminator")
    assert again.endswith(os.path.join("electra_discriminator", "2"))
    with pytest.raises(ValueError, match="exists: TF Serving versions are immutable"):
        export.export_model(str(root / "pretrained"), str(root / "out"), "discriminator", version=1)
    with pytest.raises(ValueError, match="has no task.json: pass a run_finetuning.py trial dir"):
        export.export_model(str(root / "pretrained"), str(root / "out"), "classifier")
    with pytest.raises(ValueError, match=r"cannot be exported as --kind=discriminator: .*missing "
                                         r"\['discriminator_predictions/dense/bias'"):
        export.export_model(str(root / "sst"), str(root / "out"), "discriminator")

    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", exports["paths"]["sts"]], capture_output=True,
                           text=True, check=True).stdout
    for line in ("signature_def['serving_default']", "signature_def['encoded']", "inputs['text']",
                 "inputs['text_pair']", "inputs['input_ids']", "outputs['score']"):
        assert line in shown
    assert "contains the following ops" in shown
    for path in exports["paths"].values():  # Every kind: TF core ops and TF Serving's TF Text ops only.
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        graph = saved.meta_graphs[0].graph_def
        ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        assert {op for op in ops if not hasattr(tf.raw_ops, op)} <= SERVING_TEXT_OPS, path


_FRESH_LOADER = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
assert not any(m.startswith("electra_tf") for m in sys.modules)
texts, pairs, ids, pair_ids = json.loads(sys.argv[2])
results = {}
for name, path in json.loads(sys.argv[1]).items():
    model = tf.saved_model.load(path)
    inputs = {"text": tf.constant(texts)}
    if name == "sts":
        inputs["text_pair"] = tf.constant(pairs)
    if name == "squad":
        inputs = {"question": tf.constant(pairs), "context": tf.constant(texts)}
    encoded = {k: tf.constant(v) for k, v in (pair_ids if name == "squad" else ids).items()}
    for signature, args in (("serving_default", inputs), ("encoded", encoded)):
        for key, value in model.signatures[signature](**args).items():
            results[f"{name}/{signature}/{key}"] = value.numpy()
np.savez(sys.argv[3], **results)
"""


def test_a_fresh_process_without_electra_tf_gets_the_keras_models_outputs(exports, tmp_path, vocab_file):
    tokenizer = tokenization.WordPieceTokenizer(vocab_file)
    singles = tasks.featurize([tasks.Example("", t, None, None) for t in TEXTS], tokenizer, LENGTH)
    pairs = tasks.featurize([tasks.Example("", a, b, None) for a, b in zip(TEXTS, PAIRS)], tokenizer, LENGTH)
    ids = {k: singles[k].tolist() for k in export.ID_FEATURES}
    out = tmp_path / "served.npz"
    subprocess.run([sys.executable, "-c", _FRESH_LOADER, json.dumps(exports["paths"]),
                    json.dumps([TEXTS, PAIRS, ids, {k: pairs[k].tolist() for k in export.ID_FEATURES}]), str(out)],
                   check=True, timeout=300)
    served = np.load(out, allow_pickle=True)  # Our own file: the string outputs are object arrays.
    features = {k: tf.constant(singles[k]) for k in export.ID_FEATURES}
    pair_features = {k: tf.constant(pairs[k]) for k in export.ID_FEATURES}
    mask = singles["input_mask"].astype(bool)
    disc = tf.sigmoid(exports["keras"]["discriminator"](features, training=False)).numpy()
    sst = exports["keras"]["sst"](features, training=False).numpy()
    sts = exports["keras"]["sts"](pair_features, training=False).numpy()
    for signature in ("serving_default", "encoded"):
        probability = served[f"discriminator/{signature}/replaced_probability"]
        width = probability.shape[1]  # Text is padded to the batch's longest input, not to LENGTH.
        assert width == (mask.sum(1).max() if signature == "serving_default" else LENGTH)
        np.testing.assert_allclose(probability, np.where(mask, disc, 0)[:, :width], atol=1e-5)
        tokens = served[f"discriminator/{signature}/tokens"]
        assert [t.decode() for t in tokens[1][:mask[1].sum()]] == tokenizer.tokens(singles["input_ids"][1][mask[1]])
        logits = served[f"sst/{signature}/logits"]
        np.testing.assert_allclose(logits, sst, atol=1e-5)
        assert np.ptp(logits) > 1  # The comparison is of distinct answers, not of near-constant ones.
        labels = [label.decode() for label in served[f"sst/{signature}/label"]]
        assert labels == [tasks.get_task("sst").labels[i] for i in sst.argmax(-1)]
        np.testing.assert_allclose(served[f"sst/{signature}/probabilities"].sum(-1), 1, atol=1e-6)
    np.testing.assert_allclose(served["sts/serving_default/score"], sts, atol=1e-5)
    qa = exports["keras"]["squad"](pair_features, training=False)
    context = pairs["segment_ids"].astype(bool)  # Where the logits are not masked.
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(served[f"squad/encoded/{key}"][context], qa[key].numpy()[context], atol=1e-5)
    np.testing.assert_allclose(served["squad/encoded/impossible_logits"], qa["impossible_logits"], atol=1e-5)
    for i, text in enumerate(TEXTS):  # Question PAIRS[i] on context TEXTS[i]: answers are exact substrings.
        answer, start, end = (served[f"squad/serving_default/{k}"][i] for k in ("answer", "start", "end"))
        assert answer.decode() == (text[start:end] if start >= 0 else "")
    _check_tagger(served, exports["keras"]["tagger"], tokenizer, features, mask)


def _check_tagger(served, model, tokenizer, features, mask):
    """Served words are BERT's basic split (Hugging Face's); tags and scores are the model's on tagging's windows."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    split = lambda text: [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]
    sentences = [tagging.Sentence(tuple(split(text)), None) for text in TEXTS]
    tagged, windows, stats = tagging.featurize(sentences, tokenizer, LENGTH)
    assert stats["sentences_split"] >= 1  # A text longer than the model's length is tagged in windows.
    logits = model({k: tf.constant(tagged[k]) for k in export.ID_FEATURES}, training=False).numpy()
    probabilities = tf.nn.softmax(logits).numpy()
    tags = tagging.word_tags(sentences, windows, logits.argmax(-1), TAGS)
    # word_tags reads any per-position table at the first pieces: here each position's top probability.
    scores = tagging.word_tags(sentences, windows, np.arange(logits.shape[0] * LENGTH).reshape(-1, LENGTH),
                               probabilities.max(-1).ravel())
    count = served["tagger/serving_default/num_words"]
    for i, sentence in enumerate(sentences):
        assert count[i] == len(sentence.words)
        assert [w.decode() for w in served["tagger/serving_default/words"][i][:count[i]]] == list(sentence.words)
        assert [t.decode() for t in served["tagger/serving_default/tags"][i][:count[i]]] == tags[i]
        np.testing.assert_allclose(served["tagger/serving_default/scores"][i][:count[i]], scores[i], atol=1e-5)
    assert len({t for row in tags for t in row}) > 1  # Distinct answers, not one constant tag.
    per_token = model(features, training=False).numpy()
    np.testing.assert_allclose(served["tagger/encoded/logits"][mask], per_token[mask], atol=1e-5)
    assert [t.decode() for t in served["tagger/encoded/tags"][mask]] == [TAGS[i] for i in per_token[mask].argmax(-1)]


def test_rest_requests_in_row_and_columnar_format(loaded):
    sst, disc, sts = loaded["sst"], loaded["discriminator"], loaded["sts"]
    # A pair model takes objects with both texts; several outputs answer one object per instance.
    direct = sts.signatures["serving_default"](text=tf.constant(TEXTS[:3]), text_pair=tf.constant(PAIRS[:3]))
    rows = export.rest_predict(sts, {"instances": [{"text": a, "text_pair": b} for a, b in zip(TEXTS[:3], PAIRS)]})
    np.testing.assert_allclose(rows["predictions"], direct["score"], atol=1e-7)  # One output: bare values.
    columns = export.rest_predict(sts, {"inputs": {"text": TEXTS[:3], "text_pair": PAIRS[:3]}})
    assert columns["outputs"] == rows["predictions"]
    classes = export.rest_predict(sst, {"instances": TEXTS[:2]})  # One input: bare values.
    assert [sorted(p) for p in classes["predictions"]] == [["label", "label_names", "logits", "probabilities"]] * 2
    assert classes["predictions"][0]["label_names"] == ["0", "1"]
    assert export.rest_predict(sst, {"inputs": TEXTS[:2]})["outputs"]["label"] == [
        p["label"] for p in classes["predictions"]]
    bare = export.rest_predict(disc, {"instances": ["Hello world!"]})
    assert bare["predictions"][0]["tokens"] == ["[CLS]", "hello", "world", "!", "[SEP]"]
    ids = export.rest_predict(disc, {"signature_name": "encoded", "instances": [
        {"input_ids": [101, 7592, 2088, 999, 102], "input_mask": [1] * 5, "segment_ids": [0] * 5}]})
    np.testing.assert_allclose(ids["predictions"][0]["replaced_probability"],
                               bare["predictions"][0]["replaced_probability"], atol=1e-6)
    tagged = export.rest_predict(loaded["tagger"], {"instances": ["Hello world!", ""]})["predictions"]
    assert sorted(tagged[0]) == ["num_words", "scores", "tags", "words"]
    assert tagged[0]["words"] == ["Hello", "world", "!"] and set(tagged[0]["tags"]) <= set(TAGS)
    assert tagged[1]["num_words"] == 0 and tagged[1]["tags"] == [""] * 3  # Padded to the batch's most words.
    with pytest.raises(ValueError, match="exactly one of"):
        export.rest_predict(sts, {"instances": [], "inputs": {}})
    with pytest.raises(ValueError, match=r"lacks the input\(s\) \['text_pair'\]"):
        export.rest_predict(sts, {"inputs": {"text": ["a"]}})


@pytest.mark.parametrize("name", ["sts", "tagger"])
def test_eight_threads_at_once_get_the_sequential_answers(loaded, name):
    signature = loaded[name].signatures["serving_default"]
    requests = [(TEXTS[i % len(TEXTS)] + f" request {i}", PAIRS[i % len(PAIRS)]) for i in range(8)]
    if name == "sts":
        call = lambda a, b: signature(text=tf.constant([a]), text_pair=tf.constant([b]))["score"].numpy()
    else:
        call = lambda a, b: signature(text=tf.constant([a + " " + b]))["scores"].numpy()
    sequential = [call(a, b) for a, b in requests]
    concurrent, barrier = [None] * 8, threading.Barrier(8)

    def worker(i):
        barrier.wait()
        for _ in range(5):
            concurrent[i] = call(*requests[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine, reference in zip(concurrent, sequential):
        np.testing.assert_array_equal(mine, reference)
    assert len({round(float(r.ravel()[0]), 5) for r in sequential}) > 1


def test_bad_requests_have_defined_answers(loaded):
    disc = loaded["discriminator"]
    serve = lambda texts: {k: v.numpy() for k, v in disc.signatures["serving_default"](text=tf.constant(texts)).items()}
    # Empty text: just [CLS] [SEP].
    assert [t.decode() for t in serve([""])["tokens"][0]] == ["[CLS]", "[SEP]"]
    # Very long text: cut to max_seq_length, the last token still [SEP].
    long = serve(["word " * 100_000])
    assert long["tokens"].shape == (1, LENGTH) and long["tokens"][0, -1].decode() == "[SEP]"
    # Bytes that are not UTF-8 (sent as base64, TF Serving's JSON form) are dropped, as BERT drops U+FFFD.
    raw = {"b64": base64.b64encode(b"caf\xe9 \xff\xfeopen").decode()}
    answer = export.rest_predict(disc, {"instances": [raw]})["predictions"][0]["tokens"]
    assert answer == export.rest_predict(disc, {"instances": ["caf open"]})["predictions"][0]["tokens"]
    # A batch mixing lengths: each row as it is alone; padding scores 0.
    batch = serve(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = serve([text])["replaced_probability"][0]
        np.testing.assert_allclose(batch["replaced_probability"][i][:len(alone)], alone, atol=1e-5)
        assert not batch["replaced_probability"][i][len(alone):].any()
    # Ids longer than the model's length are refused with the reason.
    too_long = {k: tf.ones([1, LENGTH + 8], tf.int32) for k in export.ID_FEATURES}
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"longer than the exported max_seq_length={LENGTH}"):
        disc.signatures["encoded"](**too_long)
