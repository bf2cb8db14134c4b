"""MRQA shared-task files: the reader (gzip, inclusive spans, errors by line), its scores, a tiny fine-tune."""

import gzip
import json
import random

import pytest

from conftest import run_script
from electra_tf import squad
from test_squad import _squad_file, _synthetic

CONTEXT = "The Eiffel Tower was finished in 1889 in Paris.\u2028It is in Paris."


def _qa(qid, question, detected, answers):
    """One question: `detected` is [(text, [[start, end], ...])] with inclusive ends, `answers` the scored texts."""
    return {"qid": qid, "question": question, "answers": answers,
            "detected_answers": [{"text": text, "char_spans": spans, "token_spans": [[0, 0]] * len(spans)}
                                 for text, spans in detected]}


def _mrqa_file(path, records, header=True):
    """Writes the official layout (a header line, then one context a line); gzip-compressed for a `.gz` path."""
    lines = [{"header": {"dataset": "test", "split": "dev"}}] if header else []
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in lines + records) + "\n"  # Raw UTF-8, U+2028.
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def _from_squad(paragraphs):
    """`_synthetic`'s answerable questions as MRQA records: each answer one detected span, and the scored text."""
    return [{"context": context, "qas": [_qa(qid, q, [(t, [[s, s + len(t) - 1]]) for t, s in answers],
                                            [t for t, _ in answers]) for qid, q, answers, impossible in qas
                                        if not impossible]}
            for context, qas in paragraphs if any(not impossible for *_, impossible in qas)]


def _eiffel_records():
    paris = [CONTEXT.index("Paris"), CONTEXT.rindex("Paris")]
    return [{"context": CONTEXT, "qas": [
        _qa("when", "When was it finished?", [("1889", [[33, 36]])], ["1889", "in 1889"]),
        # Two detected answers, the second at two places; the scored answers include one not in the context.
        _qa("where", "Where is it?", [("Paris", [[paris[0], paris[0] + 4]]), ("Paris", [[paris[1], paris[1] + 4]])],
            ["Paris", "Paris, France"]),
        _qa("what", "What is it?", [("the Eiffel Tower", [[0, 15]])], ["The Eiffel Tower"]),  # Case differs.
    ]}]


def test_reader_gzip_inclusive_spans_and_detected_answers(tmp_path):
    (tmp_path / "gz").mkdir()
    path = _mrqa_file(tmp_path / "gz" / "dev.jsonl.gz", _eiffel_records())
    examples, mismatched = squad.read_mrqa(path)
    by_id = {e.qas_id: e for e in examples}
    assert list(by_id) == ["when", "where", "what"] and by_id["when"].context == CONTEXT  # U+2028 splits no line.
    assert by_id["when"].answers == (("1889", 33),) and by_id["when"].gold_texts == ("1889", "in 1889")
    paris = CONTEXT.index("Paris")
    assert by_id["where"].answers == (("Paris", paris), ("Paris", CONTEXT.index("Paris", paris + 1)))
    assert mismatched == ["what"] and not by_id["what"].answer_at_offset  # Left out of training, counted.
    # An exclusive end (as SQuAD-style converters write) still labels the text at the span's start.
    exclusive = _mrqa_file(tmp_path / "exclusive.jsonl", [{"context": "abcd", "qas": [
        _qa("q1", "?", [("bc", [[1, 3]])], ["bc"])]}])
    (example,), skipped = squad.read_mrqa(exclusive)
    assert example.answers == (("bc", 1),) and example.answer_at_offset and skipped == []
    # A file without the header reads the same: the shared task's own samples have none.
    plain, _ = squad.read_mrqa(_mrqa_file(tmp_path / "plain.jsonl", _eiffel_records(), header=False))
    assert plain == examples
    # --data_dir finds the compressed file; SQuAD keeps its .json.
    assert squad.data_file("newsqa", str(tmp_path / "gz"), "dev") == path
    assert squad.data_file("squad", "d", "train").endswith("d/train.json")
    with pytest.raises(ValueError, match=r"--task=mrqa: found neither .*train.jsonl nor .*train.jsonl.gz"):
        squad.data_file("mrqa", str(tmp_path / "gz"), "train")


@pytest.mark.parametrize("line, error", [
    ('{"context": "abc", "qas": [', r"bad.jsonl:2: not valid JSON"),
    ({"qas": []}, r"bad.jsonl:2: missing field 'context'"),
    ({"context": "abc", "qas": [{"question": "?"}]}, r"bad.jsonl:2: qas\[0\]: missing field 'qid'"),
    ({"context": "abc", "qas": [{"qid": "q1", "question": "?", "answers": ["b"]}]},
     r"bad.jsonl:2: question q1: missing field 'detected_answers'"),
    ({"context": "abc", "qas": [_qa("q1", "?", [("b", [[1, 1]])], [])]}, r"question q1: answers \[\] is not"),
    ({"context": "abc", "qas": [_qa("q1", "?", [("c", [[3, 3]])], ["c"])]},
     r"bad.jsonl:2: question q1: char span \[3, 3\] of answer 'c' is outside the context \(3 characters"),
])
def test_reader_errors_name_file_and_line(tmp_path, line, error):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"header": {}}\n' + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(ValueError, match=error):
        squad.read_mrqa(str(path))


def test_reader_errors_inside_gzip(tmp_path):
    latin1 = tmp_path / "latin1.jsonl.gz"
    latin1.write_bytes(gzip.compress('{"header": {}}\n{"context": "Caf\u00e9", "qas": []}\n'.encode("latin-1")))
    with pytest.raises(ValueError, match=r"latin1.jsonl.gz:2: bytes that are not UTF-8 \(b'\\xe9' at byte 31\)"):
        squad.read_mrqa(str(latin1))
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(gzip.compress(b'{"header": {}}\n' * 50)[:-8])
    with pytest.raises(ValueError, match=r"damaged.jsonl.gz: a damaged gzip file"):
        squad.read_mrqa(str(damaged))


def test_scores_follow_the_official_script(tmp_path):
    examples, _ = squad.read_mrqa(_mrqa_file(tmp_path / "dev.jsonl", _eiffel_records()))
    predictions = {"when": "in 1889.", "where": "France"}  # "what" is unanswered: 0, and counted in the total.
    # when: exact against "in 1889"; where: F1 of {france} against {paris, france} 2/3, not in the context.
    assert squad.evaluate(examples, predictions, version_2=False) == pytest.approx(
        {"exact_match": 100 / 3, "f1": 100 * (1 + 2 / 3) / 3})

    # SQuAD 1.1 in MRQA's format reads into the same questions and scores as squad.py's official v1.1.
    paragraphs = _synthetic(40, seed=5)
    from_squad, _ = squad.read_squad(_squad_file(tmp_path / "v1.json", paragraphs), version_2=True)
    from_squad = [e for e in from_squad if not e.is_impossible]
    from_mrqa, mismatched = squad.read_mrqa(_mrqa_file(tmp_path / "v1.jsonl", _from_squad(paragraphs)))
    assert not mismatched and [(e.qas_id, e.question, e.context, e.answers[0]) for e in from_mrqa] == [
        (e.qas_id, e.question, e.context, e.answers[0]) for e in from_squad]
    rng = random.Random(0)
    guesses = {e.qas_id: rng.choice([e.answers[0][0], e.context.split(".")[0], ""]) for e in from_squad}
    assert squad.evaluate(from_mrqa, guesses, False) == squad.evaluate(from_squad, guesses, False)


def test_run_finetuning_mrqa_reports_scores_and_skipped_answers(tmp_path):
    train = _from_squad(_synthetic(48, seed=0))
    train[0]["qas"][0]["detected_answers"][0]["text"] = train[0]["qas"][0]["detected_answers"][0]["text"].upper()
    data_dir = tmp_path / "newsqa"  # The authors' finetuning_data/<task> layout, as shipped (gzip) for train.
    data_dir.mkdir()
    _mrqa_file(data_dir / "train.jsonl.gz", train)
    dev = _from_squad(_synthetic(12, seed=1))
    _mrqa_file(data_dir / "dev.jsonl", dev)
    model_dir = tmp_path / "run"
    done = run_script("run_finetuning.py", "--task=newsqa", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                      "--max_seq_length=48", "--doc_stride=16", "--max_query_length=12", "--num_train_epochs=1",
                      "--train_batch_size=16")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.load(open(model_dir / "results.json"))
    assert results["task"] == "newsqa" and results["train_mismatched"] == 1
    assert 0 <= results["exact_match"] <= results["f1"] <= 100
    assert "HasAns_f1" not in results  # Scored as SQuAD 1.1: every question has an answer.
    predictions = json.load(open(model_dir / "predictions.json"))
    assert set(predictions) == {qa["qid"] for record in dev for qa in record["qas"]}
    questions = sum(len(record["qas"]) for record in train)
    assert f"1 of {questions} answers are not at their answer_start or char span" in done.stderr
