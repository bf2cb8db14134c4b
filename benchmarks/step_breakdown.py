"""Milliseconds per part of a pre-training step (each part timed as its own tf.function).

    python benchmarks/step_breakdown.py --max_seq_length=64 --train_batch_size=64
    python benchmarks/step_breakdown.py --jit_compile=true
    python benchmarks/step_breakdown.py --model_size=small --train_batch_size=32 --jit_compile=true --only_matmuls

BENCHMARKS.md records the figures and the commands.
"""

import os
import time

from absl import app
from absl import flags
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import FLAGS, setup
from electra_tf import masking
from electra_tf import optimization

flags.DEFINE_integer("repeats", 10, "Timed calls per part.")
flags.DEFINE_boolean("only_matmuls", False, "Time only the step's dense matmuls (TensorFlow, and torch's GEMMs).")


def main(argv):
    del argv
    c, jit, model, batches = setup()
    batch = next(batches)

    def bench(name, fn, *args):
        f = tf.function(fn, jit_compile=jit)
        # The results' values are read so that the time includes finishing the last call.
        return timed(name, lambda: tf.nest.map_structure(lambda x: x.numpy(), f(*args)))

    if FLAGS.only_matmuls:
        return dense_matmuls(c, bench)

    features = dict(batch, seed=tf.constant([1, 2]))
    ids, mask, segments = batch["input_ids"], batch["input_mask"], batch["segment_ids"]

    def forward_backward(f):
        with tf.GradientTape() as tape:
            total = model.compute_losses(f, model(f, training=True))[0]
        return [tf.convert_to_tensor(g) for g in tape.gradient(total, model.trainable_variables)]

    def gradients_of(forward_fn, upstream, layers, *inputs):
        """One part's backward pass: the gradients w.r.t. the layers' weights and the given inputs of its output
        dotted with a fixed random tensor (a plain sum would let XLA fold the first matmul of the backward)."""
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(forward_fn() * upstream)
        weights = {id(v): v for layer in layers for v in layer.trainable_variables}  # The tied embedding once.
        # Weights the part does not use (the generator head uses only the token embedding) have no gradient.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, [*weights.values(), *inputs]) if g is not None]
        return [loss, *grads]  # The loss too: else XLA drops a forward whose last op is linear (the head's).

    outputs = model(features, training=True)
    grads = forward_backward(features)
    print(f"jit_compile={jit}, batch {c.train_batch_size} x {c.max_seq_length}")
    bench("train step", model.train_step, batch)
    bench("forward + backward", forward_backward, features)
    bench("forward", lambda f: model(f, training=True)["disc_logits"], features)
    bench("generator encoder forward", lambda: model.generator(ids, segments, mask, training=True))
    hidden = model.generator(ids, segments, mask)
    positions = outputs["masked"]["positions"]
    bench("generator head forward", lambda h: model.generator_head(h, mask_positions=positions), hidden)
    bench("discriminator encoder forward", lambda: model.discriminator(ids, segments, mask, training=True))
    disc_upstream = tf.random.normal(model.discriminator(ids, segments, mask).shape)
    bench("discriminator encoder forward + backward", lambda: gradients_of(
        lambda: model.discriminator(ids, segments, mask, training=True), disc_upstream, [model.discriminator]))
    head_upstream = tf.random.normal(outputs["mlm_logits"].shape)
    bench("generator head forward + backward", lambda h: gradients_of(
        lambda: model.generator_head(h, mask_positions=positions), head_upstream,
        [model.generator_head, model.embeddings], h), hidden)
    bench("Gumbel sampling", lambda x: masking.gumbel_sample(
        x, masking.example_seeds(tf.constant([1, 2]), c.train_batch_size), c.temperature), outputs["mlm_logits"])
    bench("optimizer (clip, Adam + weight decay)", lambda g: optimization.apply_gradients(
        model.optimizer, g, model.trainable_variables, c.clip_norm), grads)
    dense_matmuls(c, bench)


def timed(name, call):
    """Prints and returns the seconds per call of `call` over --repeats calls, after one untimed call."""
    call()
    start = time.time()
    for _ in range(FLAGS.repeats):
        call()
    seconds = (time.time() - start) / FLAGS.repeats
    print(f"{name:40s} {seconds * 1000:8.1f} ms", flush=True)
    return seconds


def dense_matmuls(c, bench):
    """Times the step's dense-layer matmuls alone, at their own shapes, and prints the GFLOP/s they reach.

    Both encoders' attention projections and FFNs, forward (x @ w) and backward (dy @ w^T, x^T @ dy), on random
    tensors, in TensorFlow (as `bench` compiles) and in torch: what the step's matmuls cost here, whatever an
    implementation does around them.
    """
    tokens = c.train_batch_size * c.max_seq_length
    shapes = []
    for hidden, intermediate, layers in ((c.hidden_size, c.intermediate_size, c.num_hidden_layers),
                                         (c.generator_hidden, c.generator_intermediate, c.generator_num_layers)):
        shapes += layers * ([(hidden, hidden)] * 4 + [(hidden, intermediate), (intermediate, hidden)])
    weights = [tf.random.normal(shape) for shape in shapes]
    inputs = [tf.random.normal((tokens, n_in)) for n_in, _ in shapes]
    grads = [tf.random.normal((tokens, n_out)) for _, n_out in shapes]

    def matmuls(weights, inputs, grads):
        return [(tf.matmul(x, w), tf.matmul(dy, w, transpose_b=True), tf.matmul(x, dy, transpose_a=True))
                for w, x, dy in zip(weights, inputs, grads)]

    seconds = bench("dense matmuls alone (fwd + bwd shapes)", matmuls, weights, inputs, grads)
    flops = sum(3 * 2 * tokens * n_in * n_out for n_in, n_out in shapes)
    print(f"{'  their GFLOP/s':40s} {flops / seconds / 1e9:8.1f} ({flops / 1e9:.1f} GFLOP)")
    import torch  # The strongest peer's GEMMs (MKL) on the same shapes: what the same matmuls can cost here.

    torch.set_num_threads(os.cpu_count())
    weights, inputs, grads = ([torch.from_numpy(t.numpy()) for t in ts] for ts in (weights, inputs, grads))
    seconds = timed("the same in torch", lambda: [(x @ w, dy @ w.T, x.T @ dy)
                                                  for w, x, dy in zip(weights, inputs, grads)])
    print(f"{'  their GFLOP/s':40s} {flops / seconds / 1e9:8.1f}")


if __name__ == "__main__":
    app.run(main)
