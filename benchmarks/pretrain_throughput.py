"""ELECTRA pre-training throughput of electra_tf against PyTorch peers on Hugging Face's networks, in one run.

All train the same config on the same real demo batches: a generator
(masked LM) and a discriminator with tied embeddings, 15% masking, sampling
from the generator, loss MLM + disc_weight * BCE, AdamW, clipping at 1.0. The
peers are `ElectraForMaskedLM` + `ElectraForPreTraining`: (1) as shipped
(the LM head projects every position onto the vocabulary, Gumbel-max over
it), and (2) as a competent pre-training script would use them: the LM head
applied at the masked positions only (as ours) and an inverse-CDF sampler
(cumulative sum + searchsorted); and (3) TF Model Garden's ElectraPretrainer
(`benchmarks/model_garden_peer.py`, in its own TF 2.20 + tf-keras environment,
run as a subprocess; skipped when `make model-garden-venv` has not built it).
`--rounds` rounds each time every implementation in turn for `--steps` steps
(after two warm-up steps), so a drift of the machine's speed hits all alike;
medians are reported. MFU is the model FLOPs of `electra_tf.flops` per second
over this machine's measured float32 matmul peak (TensorFlow, 2048 x 2048).

    python benchmarks/pretrain_throughput.py --model_size=tiny
    python benchmarks/pretrain_throughput.py --model_size=small --train_batch_size=32

The last line printed is one JSON object with `electra_tf_tokens_per_second`,
`hf_tokens_per_second` (as shipped), `torch_masked_only_tokens_per_second`,
`model_garden_tokens_per_second` (null when skipped), `ratio` (electra_tf's
speed over Hugging Face as shipped), `ratio_vs_strongest` (over the fastest
peer; also per round), `strongest_peer` and `mfu`.
"""

import json
import os
import time

from absl import app
from absl import flags
import numpy as np
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import FLAGS, hf_pair, model_garden, setup
from electra_tf import flops

flags.DEFINE_integer("steps", 10, "Timed steps for each implementation per round (after two warm-up steps).")
flags.DEFINE_integer("rounds", 3, "Rounds, each timing every implementation in turn; the medians are reported.")
flags.DEFINE_integer("threads", 0, "PyTorch threads (0: one per core, as TensorFlow uses).")


def matmul_peak(size=2048, repeats=10):
    """FLOP/s of TensorFlow's float32 matmul here: the peak MFU is measured against."""
    a = tf.random.normal([size, size])

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, a) * 1e-3
        return x

    chain(a).numpy()
    start = time.time()
    chain(a).numpy()
    return 2 * size ** 3 * repeats / (time.time() - start)


def seconds_per_step(step, batches, steps):
    """Mean wall time of `steps` calls of `step` on the next batches, waiting for the last."""
    start = time.time()
    for _ in range(steps):
        result = step(next(batches))
    float(result)
    return (time.time() - start) / steps


def electra_tf_step(model, jit):
    """electra_tf's compiled training step, returning the loss."""
    train_step = tf.function(model.train_step, jit_compile=jit)
    return lambda batch: train_step(batch)["loss"]


def hugging_face_step(config, threads, masked_only=False):
    """A torch training step on Hugging Face's networks, as shipped or with the head at masked positions only."""
    import torch

    torch.set_num_threads(threads)
    generator, discriminator = hf_pair(config)
    parameters = list({id(p): p for m in (generator, discriminator) for p in m.parameters()}.values())
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, eps=1e-6,
                                  weight_decay=config.weight_decay_rate)
    generator.train(), discriminator.train()
    rng = np.random.default_rng(0)

    def step(batch):
        ids = torch.tensor(batch["input_ids"].numpy(), dtype=torch.long)
        mask = torch.tensor(batch["input_mask"].numpy(), dtype=torch.long)
        segments = torch.tensor(batch["segment_ids"].numpy(), dtype=torch.long)
        candidates = (mask.bool() & (ids > 103)).numpy()  # Never [PAD], [CLS], [SEP], [MASK].
        picked = candidates & (rng.random(candidates.shape) < config.mask_prob)
        masked = torch.tensor(picked)
        inputs = torch.where(masked & (torch.rand(ids.shape) < 0.85), torch.full_like(ids, 103), ids)
        if masked_only:
            hidden = generator.electra(input_ids=inputs, attention_mask=mask, token_type_ids=segments)[0]
            logits = generator.generator_lm_head(generator.generator_predictions(hidden[masked]))
            mlm_loss = torch.nn.functional.cross_entropy(logits, ids[masked])
            with torch.no_grad():
                cdf = torch.softmax(logits / config.temperature, -1).cumsum(-1)
                draws = torch.rand(cdf.shape[0], 1) * cdf[:, -1:]
                sampled = torch.searchsorted(cdf, draws).squeeze(1).clamp_(max=cdf.shape[1] - 1)
        else:
            labels = torch.where(masked, ids, torch.full_like(ids, -100))
            mlm = generator(input_ids=inputs, attention_mask=mask, token_type_ids=segments, labels=labels)
            mlm_loss, logits = mlm.loss, mlm.logits[masked]
            with torch.no_grad():
                gumbel = -torch.log(-torch.log(torch.rand_like(logits) + 1e-9) + 1e-9)
                sampled = (logits / config.temperature + gumbel).argmax(-1)
        fake = ids.clone()
        fake[masked] = sampled
        disc = discriminator(input_ids=fake, attention_mask=mask, token_type_ids=segments,
                             labels=(fake != ids).long())
        loss = config.gen_weight * mlm_loss + config.disc_weight * disc.loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.clip_norm)
        optimizer.step()
        return loss

    return step


def main(argv):
    del argv
    config, jit, model, batches = setup()
    threads = FLAGS.threads or os.cpu_count()
    data_dir = f"{FLAGS.data_dir}_{config.max_seq_length}"
    steps = {"electra_tf": electra_tf_step(model, jit), "hf": hugging_face_step(config, threads),
             "torch_masked_only": hugging_face_step(config, threads, masked_only=True)}
    for step in steps.values():  # Warm-up: tracing, first allocations.
        for _ in range(2):
            step(next(batches))
    times = {name: [] for name in steps}
    peaks = []
    # Rounds interleave the implementations, so a drift of this shared machine's speed hits all of them alike.
    for _ in range(FLAGS.rounds):
        peaks.append(matmul_peak())
        for name, step in steps.items():
            times[name].append(seconds_per_step(step, batches, FLAGS.steps))
        garden = model_garden("throughput", config, data_dir, steps=FLAGS.steps)
        if garden:
            times.setdefault("model_garden", []).append(garden["model_garden_ms_per_step"] / 1000)
    median = {name: float(np.median(t)) for name, t in times.items()}
    peers = [name for name in median if name != "electra_tf"]
    strongest = min(peers, key=median.get)
    per_round = [min(times[p][r] for p in peers) / times["electra_tf"][r] for r in range(FLAGS.rounds)]
    tokens = config.train_batch_size * config.max_seq_length
    result = {"model_size": FLAGS.model_size, "batch": config.train_batch_size, "seq": config.max_seq_length,
              "jit_compile": jit, "torch_threads": threads, "rounds": FLAGS.rounds, "steps_per_round": FLAGS.steps}
    for name, seconds in median.items():
        result[f"{name}_ms_per_step"] = round(seconds * 1000, 1)
        result[f"{name}_tokens_per_second"] = round(tokens / seconds)
    result.update({
        "electra_tf_sequences_per_second": round(config.train_batch_size / median["electra_tf"], 2),
        "ratio": round(median["hf"] / median["electra_tf"], 2),
        "ratio_vs_model_garden": round(median["model_garden"] / median["electra_tf"], 2) if "model_garden" in median
        else None,
        "strongest_peer": strongest,
        "ratio_vs_strongest": round(median[strongest] / median["electra_tf"], 2),
        "ratio_vs_strongest_per_round": [round(r, 2) for r in per_round],
        "model_flops_per_step": flops.flops_per_step(config),
        "matmul_peak_gflops": round(float(np.median(peaks)) / 1e9, 1),
        "mfu": round(flops.flops_per_step(config) / median["electra_tf"] / float(np.median(peaks)), 4),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
