"""BERT WordPiece tokenization in the TensorFlow graph, with tensorflow-text.

tf-text's own BERT normaliser applies Unicode *case folding* (so 'ß' -> 'ss',
'ς' -> 'σ', '…' -> '...'), whereas BERT and ELECTRA were trained with Python's
`str.lower()`. We therefore normalise with plain TF string ops the way BERT's
`BasicTokenizer` does (drop control characters, lower-case, NFD, strip accents)
and hand the result to tf-text's `FastBertTokenizer` with its normaliser off.
The graph contains only TF core and TF Text ops, so it also runs inside a
SavedModel served by stock TF Serving.
"""

import os

import tensorflow as tf
import tensorflow_text as tf_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_vocab(vocab_file):
    """Reads a WordPiece vocabulary (one token a line) and checks it.

    Raises:
      ValueError: naming the file, if it is missing, empty, holds duplicates or
        lacks one of BERT's special tokens.
    """
    if not vocab_file or not os.path.isfile(vocab_file):
        raise ValueError(f"vocab file not found: {vocab_file!r}")
    try:
        with open(vocab_file, encoding="utf-8") as f:
            tokens = [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError as e:
        raise ValueError(f"{vocab_file}: not a UTF-8 text file ({e})") from e
    while tokens and not tokens[-1]:
        tokens.pop()
    if not tokens:
        raise ValueError(f"{vocab_file}: vocabulary is empty")
    seen = {}
    for line_no, token in enumerate(tokens, 1):
        if not token or token != token.strip():
            raise ValueError(f"{vocab_file}:{line_no}: malformed vocab entry {token!r}")
        if token in seen:
            raise ValueError(f"{vocab_file}:{line_no}: duplicate token {token!r} (first on line {seen[token]})")
        seen[token] = line_no
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise ValueError(f"{vocab_file}: missing special token(s) {missing}")
    return tokens


def normalize(text, lower_case=True):
    """BERT `BasicTokenizer` clean-up, lower-casing and accent stripping.

    Args:
      text: string tensor of any shape.
      lower_case: lower-case and strip accents (BERT uncased), else only clean.
    """
    # Bytes that are not UTF-8 (a serving client's raw bytes) become U+FFFD,
    # which BERT drops below with NUL and the control characters.
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    text = tf.strings.regex_replace(text, r"[\t\n\r]", " ")
    text = tf.strings.regex_replace(text, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
    if lower_case:
        text = tf.strings.lower(text, encoding="utf-8")
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
    return text


# BERT's punctuation (ASCII symbols and Unicode P*) and CJK ideographs, which its basic tokenizer splits apart.
_PUNCTUATION = r"!-/:-@\[-`{-~\p{P}"
_CJK = (r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
        r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}")


def basic_words(text):
    """BERT `BasicTokenizer`'s split without lower-casing: whitespace, punctuation and CJK characters.

    Control characters and bytes that are not UTF-8 are dropped as in
    `normalize`; the words keep their case and accents. Core TF ops only.

    Args:
      text: string tensor [batch].

    Returns:
      A string RaggedTensor [batch, (words)].

    Example:
    ```python
    basic_words(tf.constant(["Zoë's U.S. café"]))  # [[b"Zo\xc3\xab", b"'", b"s", b"U", b".", b"S", b".", ...]]
    ```
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    text = tf.strings.regex_replace(text, r"[\t\n\r\p{Zs}\p{Zl}\p{Zp}]", " ")  # Python split()s at Zl, Zp too.
    text = tf.strings.regex_replace(text, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
    text = tf.strings.regex_replace(text, f"[{_PUNCTUATION}{_CJK}]", r" \0 ")
    return tf.strings.split(text)


class WordPieceTokenizer(tf.Module):
    """Text to BERT WordPiece ids, identical to BERT's uncased tokenizer.

    Args:
      vocab: list of tokens, or a path to a vocab file.
      lower_case: BERT uncased behaviour (lower-case, strip accents).

    Example:
    ```python
    tokenizer = WordPieceTokenizer("vocab.txt")
    ids = tokenizer(tf.constant(["Hello world!"]))  # RaggedTensor of int32
    ```
    """

    def __init__(self, vocab, lower_case=True, name="wordpiece_tokenizer"):
        super().__init__(name=name)
        # A tuple and an untracked dict: tf.Module would wrap a list or dict of 30k tokens entry by entry for
        # checkpoint tracking (about 0.3 s per tokenizer, paid by every data-builder worker).
        self.vocab = tuple(load_vocab(vocab) if isinstance(vocab, str) else vocab)
        self.lower_case = lower_case
        self.token_to_id = self._no_dependency({t: i for i, t in enumerate(self.vocab)})
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.token_to_id[t] for t in SPECIAL_TOKENS)
        self._tokenizer = tf_text.FastBertTokenizer(
            self.vocab, token_out_type=tf.int32, unknown_token="[UNK]",
            support_detokenization=True)

    @classmethod
    def for_config(cls, vocab_file, config):
        """The tokenizer of `config` (its `do_lower_case`), checked against its `vocab_size`."""
        tokenizer = cls(vocab_file, lower_case=config.do_lower_case)
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(f"{vocab_file} has {tokenizer.vocab_size} tokens but vocab_size is {config.vocab_size}")
        return tokenizer

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __call__(self, text):
        """Tokenises a batch of strings into a RaggedTensor of ids [batch, (tokens)]."""
        return self._tokenizer.tokenize(normalize(text, self.lower_case))

    def tokenize_with_offsets(self, text):
        """Ids with each token's [start, end) offsets in characters of the ORIGINAL text.

        Every character is normalised on its own and the pieces joined, so each
        byte the WordPiece tokenizer sees maps back to the character it came
        from (whole-text normalisation would lose that). It gives the ids of
        `__call__` except where lower-casing depends on context (a Greek final
        sigma).

        Args:
          text: string tensor [batch].

        Returns:
          (ids, starts, ends): RaggedTensors [batch, (tokens)], ids int32 and
          character offsets int64.
        """
        chars = tf.strings.unicode_split(tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace"),
                                         "UTF-8")
        pieces = chars.with_flat_values(normalize(chars.flat_values, self.lower_case))
        piece_ends = tf.math.cumsum(tf.cast(tf.strings.length(pieces).to_tensor(), tf.int64), axis=1)
        column = tf.range(tf.shape(piece_ends, out_type=tf.int64)[1])
        # Past a row's last character the ends must stay sorted: the largest int64, plus one such column
        # so that an empty batch still has something to search.
        piece_ends = tf.where(column[None] < chars.row_lengths()[:, None], piece_ends, tf.int64.max)
        piece_ends = tf.pad(piece_ends, [[0, 0], [0, 1]], constant_values=tf.int64.max)
        ids, starts, ends = self._tokenizer.tokenize_with_offsets(tf.strings.reduce_join(pieces, axis=1))

        def to_characters(byte_offsets):  # The character whose normalised bytes hold the offset.
            found = tf.searchsorted(piece_ends, byte_offsets.to_tensor(), side="right")
            return tf.RaggedTensor.from_tensor(found, lengths=ids.row_lengths())

        return ids, to_characters(starts), to_characters(ends - 1) + 1

    def tokens(self, ids):
        return [self.vocab[i] for i in ids]


def truncated_lengths(lengths, max_tokens):
    """How many tokens of each text to keep so that a row has at most `max_tokens`.

    The authors' `_truncate_seq_pair` pops one token at a time from the
    longer text (from the second on ties); in closed form: the shorter text
    stays whole if it has at most half the budget, else the first text gets
    the odd token of the budget. Core TF ops only: TF Serving's bundled
    TF Text lacks the newer trimmer ops.

    Args:
      lengths: one or two int64 tensors [batch], the texts' token counts.
      max_tokens: the budget for the texts (specials excluded).
    """
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], max_tokens)]
    a, b = lengths
    m = tf.constant(max_tokens, a.dtype)
    fits = a + b <= m
    shorter_stays = 2 * tf.minimum(a, b) <= m
    new_a = tf.where(fits | (shorter_stays & (a <= b)), a, tf.where(shorter_stays, m - b, (m + 1) // 2))
    new_b = tf.where(fits | (shorter_stays & (b < a)), b, tf.where(shorter_stays, m - a, m // 2))
    return [new_a, new_b]


def pack_inputs(tokenizer, texts, max_seq_length):
    """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` in the graph, truncated as the authors did.

    Args:
      tokenizer: a `WordPieceTokenizer`.
      texts: a list of one or two string tensors [batch] (the texts A and B).
      max_seq_length: the most tokens an example may have, specials included.

    Returns:
      (input_ids, segment_ids, truncated): int32 RaggedTensors
      [batch, (length)] and a bool [batch], true where tokens were cut.

    Example:
    ```python
    ids, segments, _ = pack_inputs(tokenizer, [questions, passages], 128)
    input_ids = ids.to_tensor(shape=[None, 128])
    ```
    """
    segments = [tokenizer(text) for text in texts]
    lengths = [s.row_lengths() for s in segments]
    kept = truncated_lengths(lengths, max_seq_length - 1 - len(texts))
    truncated = tf.add_n([n - k for n, k in zip(lengths, kept)]) > 0
    trimmed = [tf.RaggedTensor.from_tensor(s.to_tensor(), lengths=k) for s, k in zip(segments, kept)]
    input_ids, segment_ids = tf_text.combine_segments(trimmed, tokenizer.cls_id, tokenizer.sep_id)
    return input_ids, tf.cast(segment_ids, tf.int32), truncated


def learn_vocab(text_files, vocab_size, output_file, lower_case=True, every_nth_line=1):
    """Learns a WordPiece vocabulary from text files with keras-hub.

    The result starts with BERT's special tokens at their usual ids.
    Pieces made only of whitespace-like characters (keras-hub can return
    non-breaking spaces) are removed.

    Args:
      text_files: paths of plain-text files.
      vocab_size: about how many tokens to learn (slightly fewer come back).
      output_file: where the vocabulary goes, one token per line.
      lower_case: lower-case and strip accents first, as the tokenizer will.
      every_nth_line: learn from every n-th line only. The learner reads about
        2 MB of text a minute on 2 CPU cores, so a 60 MB corpus takes half an
        hour whole; a sample of it gives nearly the same frequent pieces.

    Returns:
      The number of tokens written.

    Example:
    ```python
    learn_vocab(["corpus.txt"], 8000, "vocab.txt", every_nth_line=8)  # ~7,900
    ```
    """
    import keras_hub  # Imported here: only vocabulary learning needs it.

    if every_nth_line < 1:
        raise ValueError(f"every_nth_line must be positive, got {every_nth_line}")
    lines = tf.data.TextLineDataset(text_files).shard(every_nth_line, 0).map(lambda x: normalize(x, lower_case))
    pieces = keras_hub.tokenizers.compute_word_piece_vocabulary(
        lines, vocabulary_size=vocab_size, lowercase=False, strip_accents=False,
        reserved_tokens=list(SPECIAL_TOKENS))
    vocab = [p for p in pieces if p.replace("##", "", 1).strip() and p == p.strip()]
    with open(output_file, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    return len(vocab)
