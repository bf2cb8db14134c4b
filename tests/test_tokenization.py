import itertools
import json

import pytest
import tensorflow as tf

from electra_tf import pretraining_data, tokenization


def _wiki_sentences(limit):
    path = pretraining_data.package_file(pretraining_data.DEMO_CORPUS_PACKAGE, "data/summaries_en-us.json")
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)
    sentences = []
    for title in sorted(articles):
        sentences += pretraining_data.split_sentences(articles[title]["extract"] or "")
    # Every 7th sentence: a spread over the whole corpus, not just its first articles.
    return sentences[::7][:limit]


def test_ids_identical_to_hugging_face_bert_tokenizer(vocab_file):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer(vocab_file, do_lower_case=True)
    sentences = _wiki_sentences(3000) + [
        "Café naïve résumé ÅNGSTRÖM", "北京大学 is in 中国。", "tab\there\x00nul\ufffd and \u200bzero-width",
        "emoji 😀 and ½ and ﬁ", "e\u0301 combining", "Baß-Tuba… punchline"]
    assert len(sentences) >= 3000
    ours = tokenization.WordPieceTokenizer(vocab_file)(tf.constant(sentences)).to_list()
    mismatched = [s for s, a in zip(sentences, ours) if a != hf.convert_tokens_to_ids(hf.tokenize(s))]
    assert mismatched == []


def test_tokenizer_for_a_config_checks_the_vocab_size(vocab_file):
    from electra_tf.config import ElectraConfig

    assert tokenization.WordPieceTokenizer.for_config(vocab_file, ElectraConfig.from_size("tiny")).vocab_size == 30522
    with pytest.raises(ValueError, match=r"vocab.txt has 30522 tokens but vocab_size is 1000"):
        tokenization.WordPieceTokenizer.for_config(vocab_file, ElectraConfig.from_size("tiny", {"vocab_size": 1000}))


def test_special_ids_and_round_trip(vocab_file):
    tok = tokenization.WordPieceTokenizer(vocab_file)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    ids = tok(tf.constant(["Unaffable tokenization!"])).to_list()[0]
    assert tok.tokens(ids) == ["una", "##ffa", "##ble", "token", "##ization", "!"]


@pytest.mark.parametrize("content, message", [
    ("", "vocabulary is empty"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", r"missing special token\(s\) \['\[MASK\]'\]"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n", r":7: duplicate token 'hello' \(first on line 6\)"),
    ("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n", r":3: malformed vocab entry"),
])
def test_bad_vocab_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        tokenization.load_vocab(str(path))
    with pytest.raises(ValueError, match="vocab file not found"):
        tokenization.load_vocab(str(tmp_path / "nope.txt"))


def test_learned_vocab_starts_with_special_tokens_and_tokenizes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_wiki_sentences(500)), encoding="utf-8")
    out = tmp_path / "vocab.txt"
    size = tokenization.learn_vocab([str(corpus)], 800, str(out))
    vocab = tokenization.load_vocab(str(out))
    assert size == len(vocab) and 200 < size <= 800
    assert vocab[:5] == list(tokenization.SPECIAL_TOKENS)
    tok = tokenization.WordPieceTokenizer(str(out))
    ids = tok(tf.constant(["the history of the city"])).to_list()[0]
    assert ids and tok.unk_id not in ids
    # A line sample of a corpus whose odd lines hold a word the even lines lack: only the sampled lines count.
    corpus.write_text("\n".join(f"the river flows {'zyxq' if i % 2 else 'west'}" for i in range(200)), encoding="utf-8")
    tokenization.learn_vocab([str(corpus)], 100, str(out), every_nth_line=2)
    sampled = tokenization.load_vocab(str(out))
    assert "west" in sampled and "zyxq" not in sampled
    with pytest.raises(ValueError, match="every_nth_line must be positive, got 0"):
        tokenization.learn_vocab([str(corpus)], 100, str(out), every_nth_line=0)


def _authors_truncate(length_a, length_b, budget):
    """The authors' `_truncate_seq_pair` on lengths: pop from the longer, from the second on ties."""
    while length_a + length_b > budget:
        if length_a > length_b:
            length_a -= 1
        else:
            length_b -= 1
    return length_a, length_b


@pytest.mark.parametrize("budget", [1, 2, 7, 10])
def test_truncated_lengths_equal_the_authors_pop_loop_for_every_pair_of_lengths(budget):
    grid = list(itertools.product(range(14), repeat=2))
    a, b = (tf.constant([g[i] for g in grid], tf.int64) for i in (0, 1))
    kept_a, kept_b = tokenization.truncated_lengths([a, b], budget)
    assert list(zip(kept_a.numpy().tolist(), kept_b.numpy().tolist())) == [_authors_truncate(*g, budget) for g in grid]
    assert tokenization.truncated_lengths([a], budget)[0].numpy().tolist() == [min(g[0], budget) for g in grid]


def test_bytes_that_are_not_utf8_are_dropped_like_bert_drops_the_replacement_character(vocab_file):
    tokenizer = tokenization.WordPieceTokenizer(vocab_file)
    ids = tokenizer(tf.constant([b"caf\xe9 \xff\xfeopen", "caf open", "caf\ufffd open"])).to_list()
    assert ids[0] == ids[1] == ids[2]
