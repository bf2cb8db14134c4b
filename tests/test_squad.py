"""SQuAD: the reader's errors, windowed features, the official metrics, and a tiny fine-tune that learns."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_script
from electra_tf import squad, tokenization

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
THINGS = ["car", "house", "door", "boat", "kite", "lamp", "chair", "bottle", "hat", "bicycle", "fence", "cup"]
FILLER = ["Zoë's café opened in 1990 near the old harbour.", "Nobody  remembers\tthe   weather that day.",
          "The committee met twice, then adjourned.", "Crème brûlée was served at noon."]


def _squad_file(path, questions):
    """Writes the official JSON layout: one paragraph per (context, [(id, question, answers, impossible)])."""
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": qid, "question": q, "answers": [{"text": t, "answer_start": s}
                                                                             for t, s in answers],
                                      "is_impossible": impossible} for qid, q, answers, impossible in qas]}
        for context, qas in questions]}]}
    path.write_text(json.dumps(data))
    return str(path)


def _synthetic(n, seed):
    """Contexts stating colours of things among filler; the question asks one thing's colour (or a missing one)."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        things = rng.sample(THINGS, 4)
        sentences = [f"The {thing} is {rng.choice(COLOURS)}." for thing in things[:3]]
        sentences += rng.sample(FILLER, 2)
        rng.shuffle(sentences)
        context = " ".join(sentences)
        impossible = rng.random() < 0.2
        asked = things[3] if impossible else rng.choice(things[:3])
        answers = []
        if not impossible:
            sentence = f"The {asked} is "
            start = context.index(sentence) + len(sentence)
            answers = [(context[start:context.index(".", start)], start)]
        paragraphs.append((context, [(f"q{i}", f"What colour is the {asked}?", answers, impossible)]))
    return paragraphs


def test_reader_errors_name_the_question(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [')
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        squad.read_squad(str(bad), True)
    (tmp_path / "cp1252.json").write_bytes('{"data": [\n{"title": "Caf\u00e9"}]}'.encode("cp1252"))
    with pytest.raises(ValueError, match=r"cp1252.json:2: bytes that are not UTF-8 \(b'\\xe9' at byte 25\)"):
        squad.read_squad(str(tmp_path / "cp1252.json"), True)
    outside = _squad_file(tmp_path / "outside.json", [("short context", [("q7", "?", [("context", 40)], False)])])
    with pytest.raises(ValueError, match=r"question q7: answer_start 40 .* outside the context \(13 characters\)"):
        squad.read_squad(outside, True)
    (tmp_path / "missing.json").write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "c", "qas": [{"id": "q9", "answers": []}]}]}]}))
    with pytest.raises(ValueError, match="question q9: missing field 'question'"):
        squad.read_squad(str(tmp_path / "missing.json"), True)
    no_answer = _squad_file(tmp_path / "v1.json", [("some context", [("q3", "?", [], False)])])
    with pytest.raises(ValueError, match="question q3: no answers.*SQuAD 1.1 has no unanswerable"):
        squad.read_squad(no_answer, False)
    shifted = _squad_file(tmp_path / "shifted.json", [("the red car", [("q1", "?", [("red", 5)], False)])])
    examples, mismatched = squad.read_squad(shifted, True)
    assert mismatched == ["q1"] and len(examples) == 1


def test_windows_cover_the_context_and_training_labels_point_at_the_answer(tmp_path, vocab_file):
    tokenizer = tokenization.WordPieceTokenizer(vocab_file)
    words = [f"w{i}" for i in range(60)]  # "w12" is two WordPieces: windows cut through words.
    context = "  ".join(words[:30]) + "\tÉTÉ  brûlée\n" + " ".join(words[30:])
    first, edge = "w0", context[context.index("w29"):context.index("brûlée") + len("brûlée")]
    qas = [("a", "Where does it start?", [(first, 0)], False),
           ("b", "Which summer?", [(edge, context.index("w29"))], False),
           ("c", "Last?", [("w59", context.index("w59"))], False),
           ("d", "Nothing?", [], True)]
    examples, _ = squad.read_squad(_squad_file(tmp_path / "t.json", [(context, qas)]), True)
    length, stride, query = 48, 16, 8
    windows = list(squad.featurize(examples, tokenizer, length, stride, query, training=False))
    by_example = {}
    for features, window in windows:
        by_example.setdefault(window.example_index, []).append((features, window))
    context_tokens = len(tokenizer.tokenize_with_offsets(np.array([context], dtype=object))[0][0])
    for parts in by_example.values():
        assert len(parts) > 2  # Several windows per question.
        covered = [w.char_spans[w.max_context][:, 0] for _, w in parts]
        assert sum(len(c) for c in covered) == context_tokens  # Each token has exactly one max-context window.
    training = list(squad.featurize(examples, tokenizer, length, stride, query, training=True, version_2=True))
    found = {}
    for features, window in training:
        qid = examples[window.example_index].qas_id
        start, end = int(features["start_positions"]), int(features["end_positions"])
        if features["is_impossible"]:
            assert start == end == 0
            continue
        text = context[window.char_spans[start, 0]:window.char_spans[end, 1]]
        found.setdefault(qid, set()).add(text)
    assert found == {"a": {first}, "b": {edge}, "c": {"w59"}}  # Exact characters, across tabs and accents.
    v1 = list(squad.featurize(examples[:3], tokenizer, length, stride, query, training=True, version_2=False))
    assert len(v1) == sum(len(found_windows) for found_windows in [
        [f for f, w in training if w.example_index == i and not f["is_impossible"]] for i in range(3)])


def test_official_metrics_on_hand_computed_cases():
    ex = lambda qid, answers: squad.QAExample(qid, "?", "ctx", tuple((a, 0) for a in answers), not answers)
    examples = [ex("1", ["The Eiffel Tower", "Eiffel tower"]), ex("2", ["in 1889"]), ex("3", [])]
    predictions = {"1": "eiffel Tower!", "2": "1889 and 1890", "3": ""}
    # 1: exact after normalisation; 2: F1 of {1889} vs {in, 1889}: P 1/3, R 1/2 -> 0.4; 3: no answer, right.
    result = squad.evaluate(examples, predictions, version_2=True)
    assert result["exact"] == pytest.approx(100 * 2 / 3) and result["f1"] == pytest.approx(100 * 2.4 / 3)
    assert result["HasAns_total"] == 2 and result["HasAns_f1"] == pytest.approx(70)
    assert result["NoAns_exact"] == 100.0
    assert squad.evaluate(examples[:2], predictions, version_2=False) == pytest.approx(
        {"exact_match": 50.0, "f1": 70.0})
    # The threshold sweep: answering "" where the odds are high helps only the unanswerable question.
    odds = {"1": -3.0, "2": -1.0, "3": 2.0}
    swept = squad.evaluate(examples, {**predictions, "3": "wrong"}, version_2=True, null_odds=odds)
    assert swept["exact"] == pytest.approx(100 / 3) and swept["best_exact"] == pytest.approx(100 * 2 / 3)
    assert swept["best_exact_thresh"] == -3.0  # Answer only where the odds are at most -3 (question 1).
    assert squad.apply_threshold({"1": "x", "3": "y"}, odds, 0.0) == {"1": "x", "3": ""}


def test_run_finetuning_squad_learns_to_find_answers(tmp_path):
    train = _squad_file(tmp_path / "train.json", _synthetic(1500, seed=0))
    dev_questions = _synthetic(100, seed=1)
    dev = _squad_file(tmp_path / "dev.json", dev_questions)
    model_dir = tmp_path / "run"
    done = run_script("run_finetuning.py", "--task=squad", f"--train_file={train}", f"--dev_file={dev}",
                      f"--model_dir={model_dir}", "--max_seq_length=48", "--doc_stride=16",
                      "--max_query_length=12", "--num_train_epochs=8", "--steps_per_loop=50", "--learning_rate=2e-3")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.load(open(model_dir / "results.json"))
    predictions = json.load(open(model_dir / "predictions.json"))
    null_odds = json.load(open(model_dir / "null_odds.json"))
    assert set(predictions) == set(null_odds) == {f"q{i}" for i in range(100)}
    for key in ("exact_match", "f1", "HasAns_f1", "NoAns_exact", "best_threshold", "best_f1"):
        assert key in results
    # A random span of the context scores about 0.05 F1 here; finding colours of things scores far more.
    rng = random.Random(2)
    examples, _ = squad.read_squad(dev, True)
    random_spans = {}
    for e in examples:
        words = e.context.split()
        start = rng.randrange(len(words))
        random_spans[e.qas_id] = " ".join(words[start:start + rng.randint(1, 3)])
    baseline = squad.evaluate(examples, random_spans, True)["f1"]
    assert results["HasAns_f1"] > baseline + 30, (results, baseline)

    # Exported for TF Serving, the model answers (question, context) in one graph as the evaluation did.
    exported = run_script("export_model.py", f"--model_dir={model_dir / 'trial_1'}",
                          f"--export_dir={tmp_path / 'serving'}", "--kind=squad",
                          "--sample_text=What colour is the car? ||| The car is red. The hat is blue.")
    assert exported.returncode == 0, exported.stderr[-3000:]
    response = json.loads(exported.stdout.split("response: ")[1])["predictions"][0]
    assert sorted(response) == ["answer", "end", "null_odds", "score", "start"]
    served = tf.saved_model.load(str(tmp_path / "serving" / "electra_squad" / "1")).signatures["serving_default"]
    tokenizer = tokenization.WordPieceTokenizer(os.path.join(model_dir, "trial_1", "vocab.txt"))
    one_window = [e for e in examples if len(list(squad.featurize([e], tokenizer, 48, 16, 12, training=False))) == 1]
    answers = served(question=tf.constant([e.question for e in one_window]),
                     context=tf.constant([e.context for e in one_window]))
    agree = 0
    for i, e in enumerate(one_window):
        text, start, end = answers["answer"][i].numpy().decode(), int(answers["start"][i]), int(answers["end"][i])
        assert text == (e.context[start:end] if start >= 0 else "")
        agree += text == predictions[e.qas_id]
    assert len(one_window) > 20 and agree >= 0.95 * len(one_window), (agree, len(one_window))


def test_joint_head_predicts_spans_inside_the_context_and_learns_one_batch(tmp_path, vocab_file):
    """The authors' start-conditioned end head (the end-to-end test covers the plain one)."""
    from electra_tf import finetuning, optimization
    from electra_tf.config import ElectraConfig

    config = ElectraConfig.from_size("tiny", {"max_seq_length": 48, "qa_beam_size": 4, "qa_joint_hidden_size": 32,
                                              "learning_rate": 1e-3})
    tokenizer = tokenization.WordPieceTokenizer(vocab_file)
    examples, _ = squad.read_squad(_squad_file(tmp_path / "s.json", _synthetic(16, seed=3)), True)
    train = list(squad.featurize(examples, tokenizer, 48, 16, 12, training=True))
    batch = {k: tf.constant(np.stack([f[k] for f, _ in train])) for k in squad.TRAIN_FEATURES}
    model = finetuning.ElectraQuestionAnswering(config, "squad", joint=True, answerable=True)
    model.build_variables()
    model.compile(optimizer=optimization.create_optimizer(config, total_steps=60, warmup_steps=0))
    losses = [float(model.train_step(batch)["loss"]) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]  # One batch is memorised: the loss and its gradients are wired right.

    windows = list(squad.featurize(examples, tokenizer, 48, 16, 12, training=False))
    outputs = {k: v.numpy() for k, v in model({k: tf.constant(np.stack([f[k] for f, _ in windows]))
                                               for k in ("input_ids", "input_mask", "segment_ids")}).items()}
    assert outputs["end_logits"].shape == (len(windows), 4, 48) and outputs["start_top_index"].shape == (
        len(windows), 4)
    predictions, null_odds = squad.predict_answers(examples, [w for _, w in windows], outputs, 20, 30, True)
    assert set(predictions) == set(null_odds) == {e.qas_id for e in examples}
    for e in examples:
        assert predictions[e.qas_id] in e.context
