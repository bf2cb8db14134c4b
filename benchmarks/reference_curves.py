"""Learning curves of electra_tf against an independent torch ELECTRA and TF Model Garden's, over several seeds.

All train the same config (`--model_size`, tiny by default: optimizer rule,
schedule, batch, steps) on the same demo TFRecords, `--seeds` seeds each, and
are scored on the same held-out batches at 0, 25, 50, 75 and 100% of the run:

- held-out pre-training metrics, each implementation masking and sampling with
  its own code: discriminator AUC (exact) and loss over real tokens, generator
  accuracy and MLM loss at the masked positions;
- the fixed-difficulty probes of `electra_tf.probes` (the same corruptions,
  scored by the same code): unigram and uniform AUC and loss, token and [CLS]
  cosine (collapse).

The reference uses Hugging Face's `ElectraForMaskedLM` / `ElectraForPreTraining`
as the networks (sharing the embedding block), and writes the rest here in torch
from the paper and the authors' code: dynamic masking (`round(n * mask_prob)`
positions, 85% [MASK], the rest kept), the generator head at the masked
positions only, exact sampling from softmax(logits / temperature), loss
gen_weight * MLM + disc_weight * BCE over real tokens, the discriminator's initial
output bias (`disc_output_bias`), warmup multiplied onto
linear decay, global-norm clipping, and Adam with decoupled weight decay (not on
LayerNorm or biases), with bias correction or without (the authors' rule) as the
config says. The third column is TF Model Garden's ElectraPretrainer
(`model_garden_peer.py`, run in its own environment; skipped when that is
missing): its networks, sampling, loss and bias-corrected AdamWeightDecay, on
the same data, schedule and held-out batches (it cannot run the authors'
uncorrected rule).

    python benchmarks/reference_curves.py --work_dir=/tmp/curves --num_train_steps=400 --seeds=3
    python benchmarks/reference_curves.py --work_dir=/tmp/ref_mix --implementations=torch --seeds=1 \
        --num_train_steps=3000 --learning_rate=5e-4 --pretrain_data_dir=<build_pretraining_dataset.py output>

It prints, per point and metric, mean +- std of each implementation, marking
with `!` every point where electra_tf's mean lies outside the reference's mean
+- 2 std (std floored at 0.005, or 1% of the mean for losses), and writes
`curves.json` and `curves.md` to `--work_dir`. Each finished run is kept as
`<work_dir>/<implementation>_seed<s>.json` and read back by a later invocation with
the same config, so a long table can be built over several sittings. Each reference seed's
discriminator is saved as a Hugging Face model dir, `<work_dir>/torch_seed<s>`
(with vocab.txt), which `run_finetuning.py --init_checkpoint` reads, and so are its earlier points
(`torch_seed<s>_step<N>`): fine-tuning against pre-training steps.
"""

import json
import os
import shutil

from absl import app
from absl import flags
import numpy as np
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import (FLAGS, HELDOUT_MASK_SEED, SCORED, SPECIAL_IDS, build_pretrainer, heldout_metrics, hf_pair,
                    model_garden, score_runs)
from electra_tf import checkpoint_interop
from electra_tf import cli
from electra_tf import metrics
from electra_tf import pretraining_data
from electra_tf import probes as probes_lib
from electra_tf import training

flags.DEFINE_string("work_dir", "/tmp/reference_curves", "Runs, saved reference weights and the tables.")
flags.DEFINE_integer("seeds", 3, "Seeds per implementation (config.seed, config.seed + 1, ...).")
flags.DEFINE_integer("mask_seeds", 5, "Mask draws on which the saved end-point pairs of every implementation are "
                     "scored together, as score_generators.py does (0: skip).")
flags.DEFINE_string("pretrain_data_dir", None, "Train on this dir's TFRecords (build_pretraining_dataset.py's; "
                    "its eval_data shards, else its last shard, held out for the probes, as run_pretraining.py "
                    "does) instead of the demo corpus; built with BERT's uncased vocab, the demo's. "
                    "Not with model_garden.")
flags.DEFINE_list("implementations", ["electra_tf", "torch", "model_garden"],
                  "Which to run (model_garden: skipped when its environment is missing).")

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
HELDOUT = ("disc_auc", "disc_loss", "gen_accuracy", "mlm_loss")
PROBES = ("unigram_auc", "unigram_loss", "uniform_auc", "uniform_loss", "token_cosine", "cls_cosine")


def run_electra_tf(config, train_files, probes, points, model_dir, vocab_file):
    """[(step, metrics)] of one electra_tf run, trained and evaluated in this process.

    `model_dir` ends as an electra_tf model dir (`run_finetuning.py --init_checkpoint` reads it).
    """
    shutil.rmtree(model_dir, ignore_errors=True)
    checkpoint_interop.write_model_files(model_dir, config, vocab_file)
    pretrainer = build_pretrainer(config)
    trainer = training.Trainer(pretrainer, tf.distribute.get_strategy(), model_dir, guard=pretrainer.guard,
                               weights=checkpoint_interop.variable_names(pretrainer))

    def dataset_fn(context, start_step):
        return pretraining_data.make_dataset(train_files, config.train_batch_size, config.max_seq_length, True,
                                             seed=config.seed, input_context=context, start_step=start_step)

    forward = tf.function(lambda features: pretrainer(features, training=False))
    curve = []
    for point in points:
        if point and trainer.train(dataset_fn, point, config.steps_per_loop, config.num_train_steps,
                                   config.train_batch_size * config.max_seq_length)["preempted"]:
            # The trainer stopped early on SIGTERM: scoring now would record a short run as a whole one.
            raise SystemExit(f"SIGTERM at step {trainer.step} of {point}: this run is not recorded")
        curve.append((point, {**heldout_metrics(forward, probes.batches), **probes.evaluate(pretrainer)}))
    return curve


class TorchElectra:
    """ELECTRA pre-training in torch on Hugging Face's networks; see the module docstring."""

    def __init__(self, config, seed):
        import torch

        self.torch, self.c = torch, config
        torch.manual_seed(seed)
        self.random = torch.Generator().manual_seed(seed)
        self.gen, self.disc = hf_pair(config)
        with torch.no_grad():  # The config's initial output bias, as electra_tf's head (`disc_output_bias`).
            self.disc.discriminator_predictions.dense_prediction.bias.fill_(config.disc_output_bias)
        self.params, seen = {}, set()  # Shared tensors once, under the discriminator's names.
        for prefix, model in (("disc.", self.disc), ("gen.", self.gen)):
            for name, p in model.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    self.params[prefix + name] = p
        self.m = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.updates = 0

    def _mask(self, ids, input_mask, random):
        torch, c = self.torch, self.c
        candidates = (input_mask > 0) & ~torch.isin(ids, torch.tensor([0, *SPECIAL_IDS.values()]))
        wanted = torch.round(input_mask.sum(1).float() * c.mask_prob).long().clamp(1, c.max_predictions_per_seq)
        count = torch.minimum(wanted, candidates.sum(1))
        scores = torch.where(candidates, torch.rand(ids.shape, generator=random), torch.full(ids.shape, -1.0))
        rank = scores.argsort(1, descending=True).argsort(1)
        chosen = candidates & (rank < count[:, None])
        keep = torch.rand(ids.shape, generator=random) >= 0.85
        return chosen, torch.where(chosen & ~keep, torch.full_like(ids, SPECIAL_IDS["mask"]), ids)

    def _forward(self, batch, random):
        torch, c = self.torch, self.c
        ids, input_mask, segments = (torch.tensor(batch[k], dtype=torch.long)
                                     for k in ("input_ids", "input_mask", "segment_ids"))
        chosen, inputs = self._mask(ids, input_mask, random)
        hidden = self.gen.electra(input_ids=inputs, attention_mask=input_mask, token_type_ids=segments)[0]
        logits = self.gen.generator_lm_head(self.gen.generator_predictions(hidden[chosen]))
        with torch.no_grad():
            probs = torch.softmax(logits.float() / c.temperature, -1)
            sampled = torch.multinomial(probs, 1, generator=random)[:, 0]
        fake = ids.clone()
        fake[chosen] = sampled
        labels = (fake != ids).float()
        disc_logits = self.disc(input_ids=fake, attention_mask=input_mask, token_type_ids=segments).logits
        return ids, input_mask, chosen, logits, disc_logits, labels

    def learning_rate(self, step):
        c = self.c
        rate = c.learning_rate * (1.0 - min(step, c.num_train_steps) / c.num_train_steps) ** c.lr_decay_power
        return rate * min(1.0, step / c.num_warmup_steps) if c.num_warmup_steps else rate

    def train_step(self, batch):
        torch, c = self.torch, self.c
        self.gen.train(), self.disc.train()
        ids, input_mask, chosen, logits, disc_logits, labels = self._forward(batch, self.random)
        mlm = torch.nn.functional.cross_entropy(logits, ids[chosen])
        real = input_mask.float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(disc_logits, labels, reduction="none")
        loss = c.gen_weight * mlm + c.disc_weight * (bce * real).sum() / real.sum()
        for p in self.params.values():
            p.grad = None
        loss.backward()
        with torch.no_grad():
            grads = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in self.params.items()}
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item()
            clip = c.clip_norm / max(norm, c.clip_norm)
            lr, t = self.learning_rate(self.updates), self.updates + 1
            for name, p in self.params.items():
                g = grads[name] * clip
                self.m[name].mul_(c.adam_beta_1).add_(g * (1 - c.adam_beta_1))
                self.v[name].mul_(c.adam_beta_2).add_(g * g * (1 - c.adam_beta_2))
                m, v = self.m[name], self.v[name]
                if c.adam_bias_correction:  # Textbook Adam(W): corrected moments, decay applied first.
                    m, v = m / (1 - c.adam_beta_1 ** t), v / (1 - c.adam_beta_2 ** t)
                update = m / (v.sqrt() + c.adam_epsilon)
                if not any(x in name for x in ("LayerNorm", "bias")):
                    update = update + c.weight_decay_rate * p
                p.sub_(lr * update)
        self.updates += 1

    def evaluate(self, probes):
        torch = self.torch
        self.gen.eval(), self.disc.eval()
        random = torch.Generator().manual_seed(HELDOUT_MASK_SEED)  # The same masks at every evaluation.
        collected = ([], [], [], [])
        with torch.no_grad():
            for batch in probes.batches:
                ids, input_mask, chosen, logits, disc_logits, labels = self._forward(batch, random)
                real = input_mask > 0
                for store, value in zip(collected, (disc_logits[real], labels[real], logits, ids[chosen])):
                    store.append(value.numpy())

            def logits_fn(fake, batch):
                return self.disc(input_ids=torch.tensor(fake, dtype=torch.long),
                                 attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                                 token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long)).logits.numpy()

            def states_fn(batch):
                out = self.disc.electra(**{k: torch.tensor(batch[f], dtype=torch.long) for k, f in (
                    ("input_ids", "input_ids"), ("attention_mask", "input_mask"), ("token_type_ids", "segment_ids"))},
                    output_hidden_states=True)
                return [h.numpy() for h in out.hidden_states]

            return {**metrics.pretraining_metrics(*collected), **probes.score(logits_fn, states_fn)}


def save_torch(model, save_dir, vocab_file):
    model.disc.save_pretrained(save_dir)
    model.gen.save_pretrained(os.path.join(save_dir, "generator"))
    shutil.copy(vocab_file, os.path.join(save_dir, "vocab.txt"))


def run_torch(config, train_files, probes, points, save_dir, vocab_file):
    """[(step, metrics)] of one torch reference run; its discriminator is saved to `save_dir` (a Hugging Face
    dir `run_finetuning.py --init_checkpoint` reads), its generator to `save_dir/generator`, and so at each
    earlier point to `<save_dir>_step<N>` (fine-tuning against pre-training steps)."""
    import torch

    torch.set_num_threads(os.cpu_count())
    model = TorchElectra(config, config.seed)
    batches = pretraining_data.make_dataset(train_files, config.train_batch_size, config.max_seq_length, True,
                                            seed=config.seed).as_numpy_iterator()
    curve = []
    for point in points:
        while model.updates < point:
            model.train_step(next(batches))
        curve.append((point, model.evaluate(probes)))
        if 0 < point < points[-1]:
            save_torch(model, f"{save_dir}_step{point}", vocab_file)
    save_torch(model, save_dir, vocab_file)
    return curve


def run_once(name, config, s, data_dir, train_files, probes, points, vocab_file):
    """[(step, metrics)] of one implementation and seed, read back from `<work_dir>/<name>_seed<s>.json`
    when an earlier invocation finished it with the same config (so a long table can be built in parts)."""
    record = os.path.join(FLAGS.work_dir, f"{name}_seed{s}.json")
    if os.path.exists(record):
        with open(record) as f:
            saved = json.load(f)
        if saved["config"] == config.to_dict() and [p for p, _ in saved["curve"]] == points:
            print(name, "seed", s, "read from", record)
            return [tuple(point) for point in saved["curve"]]
    if name == "electra_tf":
        curve = run_electra_tf(config, train_files, probes, points,
                               os.path.join(FLAGS.work_dir, f"electra_tf_seed{s}"), vocab_file)
    elif name == "torch":
        curve = run_torch(config, train_files, probes, points, os.path.join(FLAGS.work_dir, f"torch_seed{s}"),
                          vocab_file)
    else:
        garden = model_garden("curves", config, data_dir, points=points)
        if garden is None:
            return None
        curve = [(point, values) for point, values in garden["curve"]]
    print(name, "seed", s, json.dumps({p: {k: round(v, 4) for k, v in m.items()} for p, m in curve}))
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    with open(record, "w") as f:
        json.dump({"config": config.to_dict(), "curve": curve}, f)
    return curve


def tables(results, points):
    """Markdown tables (one per metric) and the list of flagged (metric, step)."""
    lines, flagged = [], []
    for metric in HELDOUT + PROBES:
        lines += [f"\n{metric}\n", "| step | " + " | ".join(results) + " | electra_tf outside reference +- 2 std |",
                  "|---" * (len(results) + 2) + "|"]
        for i, point in enumerate(points):
            cells, stats = [], {}
            for name, curves in results.items():
                values = np.array([curve[i][1][metric] for curve in curves])
                stats[name] = (values.mean(), values.std())
                cells.append(f"{values.mean():.3f} +- {values.std():.3f}")
            mark = ""
            if "electra_tf" in stats and "torch" in stats:
                (ours, _), (ref, spread) = stats["electra_tf"], stats["torch"]
                floor = 0.01 * abs(ref) if metric.endswith("loss") else 0.005
                if abs(ours - ref) > 2 * max(spread, floor):
                    mark = "!"
                    flagged.append((metric, point))
            lines.append(f"| {point} | " + " | ".join(cells) + f" | {mark} |")
    return "\n".join(lines), flagged


def same_mask_table(config, batches, names):
    """Markdown table of the end-point pairs scored on the same mask draws (`common.score_runs`), and its numbers.

    Each curve is scored on its implementation's own fixed mask draw, which alone moved the torch reference's
    generator accuracy by 0.01; this table takes that out. Model Garden's runs keep no weights, so it is absent.
    """
    rows, numbers = [], {}
    for name in names:
        dirs = [os.path.join(FLAGS.work_dir, f"{name}_seed{s}") for s in range(FLAGS.seeds)]
        needed = ("generator",) if name == "torch" else ("config.json", "checkpoint")
        if name == "model_garden" or not all(os.path.exists(os.path.join(d, n)) for d in dirs for n in needed):
            print(f"same-mask scoring: {name} skipped (not every seed's dir in {FLAGS.work_dir} has {needed})")
            continue
        runs = score_runs(config, dirs, batches, FLAGS.mask_seeds).values()
        numbers[name] = {m: [float(np.mean([r[m][0] for r in runs])), float(np.std([r[m][0] for r in runs]))]
                         for m in SCORED}
        rows.append(f"| {name} | " + " | ".join(f"{a:.4f} +- {b:.4f}" for a, b in numbers[name].values()) + " |")
    header = [f"\nend point, every pair scored on the same {FLAGS.mask_seeds} mask draws (mean +- std over seeds)\n",
              "| implementation | " + " | ".join(SCORED) + " |", "|---" * (len(SCORED) + 1) + "|"]
    return "\n".join(header + rows), numbers


def main(argv):
    del argv
    base = cli.load_config(FLAGS)
    if FLAGS.pretrain_data_dir:
        if "model_garden" in FLAGS.implementations:
            raise app.UsageError("--pretrain_data_dir: not with model_garden (it reads the demo data only); "
                                 "pass --implementations=electra_tf,torch")
        data_dir, vocab_file = FLAGS.pretrain_data_dir, pretraining_data.demo_vocab_file()
    else:
        data_dir = f"{FLAGS.data_dir}_{base.max_seq_length}"
        vocab_file = pretraining_data.prepare_demo_data(data_dir, base.max_seq_length, base.do_lower_case)
    train_files, eval_files = pretraining_data.train_and_eval_files(
        data_dir, "--pretrain_data_dir" if FLAGS.pretrain_data_dir else "--data_dir")
    probes = probes_lib.HealthProbes.from_files(eval_files, base, SPECIAL_IDS, seed=0)
    points = sorted({round(base.num_train_steps * f) for f in FRACTIONS})
    results = {}
    for name in FLAGS.implementations:
        if name not in ("electra_tf", "torch", "model_garden"):
            raise app.UsageError(f"--implementations: unknown {name!r}; choose from electra_tf, torch, model_garden")
        curves = [run_once(name, base.replace(seed=base.seed + s), s, data_dir, train_files, probes, points,
                           vocab_file) for s in range(FLAGS.seeds)]
        if all(curves):  # Model Garden's environment may be missing.
            results[name] = curves
    text, flagged = tables(results, points)
    same_mask = {}
    if FLAGS.mask_seeds:
        same_mask_text, same_mask = same_mask_table(base, probes.batches, results)
        text += "\n" + same_mask_text
    print(text)
    print("flagged (metric, step):", flagged)
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    with open(os.path.join(FLAGS.work_dir, "curves.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(FLAGS.work_dir, "curves.json"), "w") as f:
        json.dump({"config": base.to_dict(), "points": points, "flagged": flagged,
                   "curves": {n: [[m for _, m in c] for c in cs] for n, cs in results.items()},
                   "same_mask_end_point": same_mask}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
