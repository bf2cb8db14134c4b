"""Pre-training FLOPs counted in the authors' manner, for any config.

As the ELECTRA paper's compute comparisons: every multiply-add is 2 FLOPs;
a transformer layer counts its four attention projections, the attention
scores and the weighted sum over the sequence, the two FFN matmuls and the
element-wise work (dropout 4 FLOPs an element, LayerNorm 5, activation 8,
softmax 5, biases and residuals 1); the embedding lookup is a gather and
counts nothing, the `embeddings_project` counts as a dense layer. The
masked-LM head runs on the `max_predictions_per_seq` masked positions (as
both the authors' code and ours compute it), the discriminator head on every
position. Training is 3x the forward pass (the backward pass costs twice the
forward). An ELECTRA step trains the generator and the discriminator; the MLM
baseline trains one full-size masked LM. The variants (docs/pretraining_variants.md)
count what they run: an untied generator embeds at its hidden size, a
uniform or unigram generator costs nothing, Replace MLM puts a masked-LM head
on the full-size model's masked positions and All-Tokens MLM on every position
(with its copy head); sampling is not counted, as in the authors' count. An
Electric step trains two generator-sized towers, a cloze head at every
position and the discriminator. Adversarial ELECTRA adds its baseline head (the
discriminator head's shape at the generator's width) at the masked positions.

Example:
```python
flops_per_step(ElectraConfig.from_size("small"))  # FLOPs of one global batch
```
"""

DROPOUT, LAYER_NORM, ACTIVATION, SOFTMAX = 4, 5, 8, 5


def layer_flops(hidden, intermediate, heads, seq):
    """Forward FLOPs of one post-LN transformer layer, per token."""
    attention = (3 * (2 * hidden * hidden + hidden)  # query, key, value
                 + 2 * hidden * seq + heads * seq  # scores and their scaling
                 + (SOFTMAX + DROPOUT) * heads * seq  # softmax, attention dropout
                 + 2 * hidden * seq  # weighted sum of the values
                 + 2 * hidden * hidden + hidden + (DROPOUT + 1 + LAYER_NORM) * hidden)  # output, residual, LN
    feed_forward = (2 * hidden * intermediate + intermediate + ACTIVATION * intermediate
                    + 2 * intermediate * hidden + hidden + (DROPOUT + 1 + LAYER_NORM) * hidden)
    return attention + feed_forward


def encoder_flops(embedding, hidden, layers, intermediate, heads, seq):
    """Forward FLOPs of an encoder per token: embedding sum, LayerNorm, dropout, projection, layers."""
    embeddings = 2 * embedding + (LAYER_NORM + DROPOUT) * embedding
    if embedding != hidden:
        embeddings += 2 * embedding * hidden + hidden
    return embeddings + layers * layer_flops(hidden, intermediate, heads, seq)


def mlm_head_flops(hidden, embedding, vocab):
    """Forward FLOPs of the masked-LM head at one masked position: dense, GELU, LN, tied projection, softmax."""
    return (2 * hidden * embedding + embedding + (ACTIVATION + LAYER_NORM) * embedding
            + 2 * embedding * vocab + vocab + SOFTMAX * vocab)


def discriminator_head_flops(hidden):
    """Forward FLOPs of the replaced-token head at one position: dense, GELU, dense to one logit."""
    return 2 * hidden * hidden + hidden + ACTIVATION * hidden + 2 * hidden + 1


def generator_flops(config):
    """Forward FLOPs of the generator on one sequence: its encoder and heads (0 if weightless).

    Electric's generator is two towers (a causal mask still computes every
    score) and a cloze head at EVERY position over both towers' states (2x the
    generator's width), whose log-softmax also gives log q.
    """
    c, seq = config, config.max_seq_length
    if not c.has_generator_network:
        return 0
    if c.generator_kind == "two_tower":
        return (2 * seq * encoder_flops(c.embedding_size, c.generator_hidden, c.generator_num_layers,
                                        c.generator_intermediate, c.generator_heads, seq)
                + seq * mlm_head_flops(2 * c.generator_hidden, c.embedding_size, c.vocab_size))
    head = mlm_head_flops(c.generator_hidden, c.generator_embedding_size, c.vocab_size)
    if c.generator_training == "adversarial":  # The learned baseline, at the masked positions too.
        head += discriminator_head_flops(c.generator_hidden)
    return (seq * encoder_flops(c.generator_embedding_size, c.generator_hidden, c.generator_num_layers,
                                c.generator_intermediate, c.generator_heads, seq)
            + c.max_predictions_per_seq * head)


def discriminator_flops(config):
    """Forward FLOPs of the full-size model on one sequence: its encoder and the objective's heads."""
    c, seq = config, config.max_seq_length
    encoder = seq * encoder_flops(c.embedding_size, c.hidden_size, c.num_hidden_layers, c.intermediate_size,
                                  c.num_attention_heads, seq)
    if c.objective == "mlm" or c.objective == "replace_mlm":
        return encoder + c.max_predictions_per_seq * mlm_head_flops(c.hidden_size, c.embedding_size, c.vocab_size)
    if c.objective == "all_tokens_mlm":  # Every position predicted, with its copy probability.
        return encoder + seq * (mlm_head_flops(c.hidden_size, c.embedding_size, c.vocab_size)
                                + discriminator_head_flops(c.hidden_size))
    return encoder + seq * discriminator_head_flops(c.hidden_size)


def flops_per_step(config):
    """Training FLOPs (forward + backward) of one global batch of `config`.

    With two-stage training, the mean over the run: the generator alone for
    `two_stage_generator_steps` steps, then the discriminator trained with
    the generator frozen (its forward pass only).
    """
    c = config
    if c.objective == "mlm":
        return 3 * discriminator_flops(c) * c.train_batch_size
    generator, discriminator = generator_flops(c), discriminator_flops(c)
    if not c.two_stage_generator_steps:
        return 3 * (generator + discriminator) * c.train_batch_size
    first = c.two_stage_generator_steps
    total = first * 3 * generator + (c.num_train_steps - first) * (generator + 3 * discriminator)
    return total / c.num_train_steps * c.train_batch_size
