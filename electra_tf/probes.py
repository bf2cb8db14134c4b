"""Health probes of pre-training that do not drift with the generator.

The discriminator AUC of a run depends on how good the generator's samples
are: early on they are random rare tokens, easy to spot; later frequent words
that fit. These probes hold the task fixed: held-out batches are corrupted once
(fixed seed), identically at every evaluation, and the discriminator alone is
scored on them:

- `unigram`: 15% of the real tokens replaced by tokens drawn from the corpus's
  unigram distribution (frequent words: only context tells them apart);
- `uniform`: replaced by uniformly drawn vocabulary tokens (easy: a sanity floor).

Each reports the exact AUC and the mean loss over real tokens, with the base
rate beside them (the loss and accuracy of saying "original" everywhere). On
the clean batches it also reports collapse signals: the mean cosine
similarity of the [CLS] vectors of different inputs, of the token vectors
within a sequence, and each layer's mean hidden-state norm.

Example:
```python
probes = HealthProbes.from_files(eval_files, config, special_ids)
probes.evaluate(pretrainer)  # {"unigram_auc": ..., "uniform_auc": ..., "cls_cosine": ..., ...}
```
"""

import os

import numpy as np
import tensorflow as tf

from electra_tf import metrics
from electra_tf import pretraining_data

KINDS = ("unigram", "uniform")


class HealthProbes:
    """Fixed corruptions of held-out batches and the discriminator's scores on them.

    Args:
      batches: dicts of int32 `input_ids`, `input_mask`, `segment_ids` (numpy).
      special_ids: ids never corrupted and never drawn ([CLS], [SEP], [MASK], ...).
      vocab_size: size of the vocabulary.
      replace_prob: fraction of each sequence's real tokens replaced.
      seed: seeds the corruptions, so every evaluation sees the same ones.
    """

    def __init__(self, batches, special_ids, vocab_size, replace_prob=0.15, seed=0):
        rng = np.random.default_rng(seed)
        self.batches = batches
        special = _special_mask(special_ids, vocab_size)
        unigram = unigram_distribution(batches, special_ids, vocab_size)
        uniform = (~special) / (~special).sum()
        self.corrupted = {kind: [] for kind in KINDS}
        for batch in batches:
            candidates = (batch["input_mask"] > 0) & ~special[batch["input_ids"]]
            chosen = candidates & (rng.random(candidates.shape) < replace_prob)
            for kind, distribution in (("unigram", unigram), ("uniform", uniform)):
                drawn = rng.choice(vocab_size, size=batch["input_ids"].shape, p=distribution).astype(np.int32)
                fake = np.where(chosen, drawn, batch["input_ids"])
                self.corrupted[kind].append((fake, (fake != batch["input_ids"]).astype(np.int32)))

    @classmethod
    def from_files(cls, files, config, special_ids, num_batches=None, seed=0):
        """Probes on the first `num_batches` (default `config.num_eval_steps`) held-out batches of `files`."""
        batches = first_batches(files, config, num_batches, "health probes")
        return cls(batches, list(special_ids.values()), config.vocab_size, config.mask_prob, seed)

    def evaluate(self, pretrainer):
        """{name: value} for the current weights of an ELECTRA `ElectraPretrainer`."""
        disc, head = pretrainer.discriminator, pretrainer.discriminator_head

        @tf.function
        def logits(ids, batch):
            return head(disc(ids, batch["segment_ids"], batch["input_mask"], training=False))

        @tf.function
        def states(batch):
            return disc(batch["input_ids"], batch["segment_ids"], batch["input_mask"], training=False,
                        return_all_layers=True)

        return self.score(lambda ids, batch: logits(tf.constant(ids), batch).numpy(),
                          lambda batch: [s.numpy() for s in states(batch)])

    def score(self, logits_fn, states_fn):
        """{name: value} for any discriminator, given as two functions of numpy arrays.

        So another implementation (a torch reference, say) is scored on exactly
        the same corruptions and with the same arithmetic.

        Args:
          logits_fn: `(input_ids [B, T], batch) -> [B, T]` "replaced" logits.
          states_fn: `batch -> [hidden states [B, T, H]]`: after the embeddings, then each layer.
        """
        results = {}
        for kind in KINDS:
            scores, labels = [], []
            for batch, (fake, label) in zip(self.batches, self.corrupted[kind]):
                real = batch["input_mask"] > 0
                scores.append(np.asarray(logits_fn(fake, batch))[real])
                labels.append(label[real])
            scores, labels = np.concatenate(scores).astype(np.float64), np.concatenate(labels)
            # Sigmoid cross-entropy from logits, stably.
            loss = np.maximum(scores, 0) - scores * labels + np.log1p(np.exp(-np.abs(scores)))
            rate = labels.mean()
            results.update({
                f"{kind}_auc": metrics.roc_auc(scores, labels), f"{kind}_loss": float(loss.mean()),
                f"{kind}_accuracy": float(((scores > 0) == labels).mean()),
                f"{kind}_base_rate_loss": float(-(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))),
                f"{kind}_base_rate_accuracy": float(1 - rate)})
        results.update(self._collapse_signals([states_fn(b) for b in self.batches]))
        return results

    def evaluate_and_log(self, pretrainer, model_dir, step):
        """`evaluate`, also written to TensorBoard under `<model_dir>/eval` as `probes/<name>`."""
        results = self.evaluate(pretrainer)
        with tf.summary.create_file_writer(os.path.join(model_dir, "eval")).as_default(step=step):
            for name, value in results.items():
                tf.summary.scalar(f"probes/{name}", value)
        return results

    def _collapse_signals(self, all_states):
        cls_vectors, within, norms = [], [], np.zeros(len(all_states[0]))
        for batch, layers in zip(self.batches, all_states):
            last = _unit(np.asarray(layers[-1]))
            cls_vectors.append(last[:, 0])
            for vectors, mask in zip(last, batch["input_mask"] > 0):
                if mask.sum() > 1:
                    within.append(_mean_pairwise_cosine(vectors[mask]))
            real = batch["input_mask"] > 0
            norms += [np.linalg.norm(np.asarray(layer), axis=-1)[real].mean() for layer in layers]
        results = {"cls_cosine": _mean_pairwise_cosine(np.concatenate(cls_vectors)),
                   "token_cosine": float(np.mean(within))}
        results.update({f"hidden_norm_layer_{i}": float(v) for i, v in enumerate(norms / len(self.batches))})
        return results


def first_batches(files, config, num_batches=None, user="unigram distribution"):
    """The first `num_batches` (default `config.num_eval_steps`) batches of `files`, in file order, as numpy."""
    dataset = pretraining_data.make_dataset(files, config.eval_batch_size, config.max_seq_length, False)
    batches = [{k: v.numpy() for k, v in b.items()} for b in dataset.take(num_batches or config.num_eval_steps)]
    if not batches:
        raise ValueError(f"{user}: {files[0]} ... hold no full batch of {config.eval_batch_size}; lower "
                         "--eval_batch_size")
    return batches


def unigram_distribution(batches, special_ids, vocab_size):
    """The corpus's unigram distribution [vocab]: token frequencies over the batches' real tokens.

    [PAD] (id 0) and `special_ids` get probability 0. The `unigram` probe draws
    its replacements from it, and so does the `unigram` generator.

    Example:
    ```python
    p = unigram_distribution(first_batches(train_files, config), [101, 102, 103], config.vocab_size)
    ```
    """
    ids = np.concatenate([b["input_ids"][b["input_mask"] > 0] for b in batches])
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    counts[_special_mask(special_ids, vocab_size)] = 0
    return counts / counts.sum()


def _special_mask(special_ids, vocab_size):
    special = np.zeros(vocab_size, bool)
    special[[0, *special_ids]] = True
    return special


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _mean_pairwise_cosine(unit_vectors):
    """Mean cosine similarity over the distinct pairs of `unit_vectors` [n, d] (n > 1)."""
    n = len(unit_vectors)
    similarity = unit_vectors @ unit_vectors.T
    return float((similarity.sum() - np.trace(similarity)) / (n * (n - 1)))


def replacement_table(pretrainer, batch, vocab, num_sentences=3, max_tokens=24):
    """What ELECTRA does to a few held-out sentences, as a Markdown table per sentence.

    Each row is a token of the input, the generator's sample where the token
    was masked (`=` when it drew the original), and the discriminator's
    probability that the token was replaced; caught replacements (p > 0.5) are bold.

    Args:
      pretrainer: an ELECTRA `ElectraPretrainer`.
      batch: dict of int32 numpy `input_ids`, `input_mask`, `segment_ids` (held-out data).
      vocab: the vocabulary as a list of tokens.
      num_sentences: rows of `batch` shown.
      max_tokens: tokens shown per sentence.
    """
    features = {k: tf.constant(v[:num_sentences]) for k, v in batch.items()}
    outputs = pretrainer(dict(features, seed=tf.constant([pretrainer.config.seed + 2, 0], tf.int32)), training=False)
    masked = {k: v.numpy() for k, v in outputs["masked"].items()}
    fake_ids, probs = outputs["fake_ids"].numpy(), tf.sigmoid(outputs["disc_logits"]).numpy()
    tables = []
    for i in range(len(fake_ids)):
        masked_positions = set(masked["positions"][i][masked["weights"][i] > 0].tolist())
        length = min(int(batch["input_mask"][i].sum()), max_tokens)
        rows = ["| token | generator | p(replaced) |", "|---|---|---|"]
        for j in range(length):
            original, fake = int(batch["input_ids"][i, j]), int(fake_ids[i, j])
            sample = ("=" if fake == original else vocab[fake]) if j in masked_positions else ""
            p = f"{probs[i, j]:.2f}"
            rows.append(f"| {vocab[original]} | {sample} | {f'**{p}**' if fake != original and probs[i, j] > 0.5 else p} |")
        tables.append("\n".join(rows))
    return tables
