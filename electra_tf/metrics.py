"""The metrics GLUE reports, and held-out pre-training metrics, on numpy arrays.

Computed on the host over the whole evaluation set (MCC, F1 and rank
correlations do not average over batches).

Example:
```python
task_metrics(("mcc", "accuracy"), predictions=np.array([1, 0, 1]), labels=np.array([1, 1, 1]))
```
"""

import numpy as np


def accuracy(predictions, labels):
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def f1(predictions, labels, positive=1):
    """F1 of the positive class (GLUE's F1 for MRPC and QQP)."""
    predictions, labels = np.asarray(predictions) == positive, np.asarray(labels) == positive
    true_positives = np.sum(predictions & labels)
    if true_positives == 0:
        return 0.0
    precision, recall = true_positives / np.sum(predictions), true_positives / np.sum(labels)
    return float(2 * precision * recall / (precision + recall))


def mcc(predictions, labels):
    """Matthews correlation (CoLA), multi-class form; 0 when a margin is constant."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes = np.union1d(predictions, labels)
    confusion = np.array([[np.sum((labels == t) & (predictions == p)) for p in classes] for t in classes],
                         dtype=np.float64)
    n = confusion.sum()
    correct = np.trace(confusion)
    true_totals, predicted_totals = confusion.sum(axis=1), confusion.sum(axis=0)
    numerator = correct * n - np.dot(true_totals, predicted_totals)
    denominator = np.sqrt((n ** 2 - np.dot(predicted_totals, predicted_totals)) *
                          (n ** 2 - np.dot(true_totals, true_totals)))
    return float(numerator / denominator) if denominator else 0.0


def pearson(predictions, labels):
    x, y = np.asarray(predictions, np.float64), np.asarray(labels, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denominator) if denominator else 0.0


def spearman(predictions, labels):
    """Pearson correlation of the ranks (ties get their average rank)."""
    return pearson(_ranks(predictions), _ranks(labels))


def mse(predictions, labels):
    return float(np.mean((np.asarray(predictions, np.float64) - np.asarray(labels, np.float64)) ** 2))


def roc_auc(scores, labels):
    """Exact area under the ROC curve (Mann-Whitney U; ties count half); 0.5 when one class is absent."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if not positives or not negatives:
        return 0.5
    rank_sum = _ranks(scores)[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def pretraining_metrics(disc_scores, disc_labels, mlm_logits, mlm_targets):
    """Held-out ELECTRA metrics from per-batch arrays, the same arithmetic for every implementation.

    Args:
      disc_scores: discriminator "replaced" logits at real tokens, one array per batch.
      disc_labels: 1 where the token was replaced, matching `disc_scores`.
      mlm_logits: generator logits [n, vocab] at the masked positions, one array per batch.
      mlm_targets: the original ids at those positions.

    Returns:
      {"disc_auc", "disc_loss", "gen_accuracy", "mlm_loss"}: exact AUC, mean sigmoid
      cross-entropy, top-1 accuracy and mean softmax cross-entropy.
    """
    scores, labels = np.concatenate(disc_scores).astype(np.float64), np.concatenate(disc_labels)
    bce = np.maximum(scores, 0) - scores * labels + np.log1p(np.exp(-np.abs(scores)))
    logits, targets = np.concatenate(mlm_logits).astype(np.float64), np.concatenate(mlm_targets)
    top = logits.max(-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
    return {"disc_auc": roc_auc(scores, labels), "disc_loss": float(bce.mean()),
            "gen_accuracy": float((logits.argmax(-1) == targets).mean()),
            "mlm_loss": float((log_z - logits[np.arange(len(targets)), targets]).mean())}


def _ranks(values):
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    # Average the ranks within each group of equal values.
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman, "mse": mse}


def task_metrics(names, predictions, labels):
    """{name: value} for each metric name (see `METRICS`)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](predictions, labels) for name in names}
