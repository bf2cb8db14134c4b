"""Fine-tuning, inference, serving and data-builder throughput, and each one's peak memory.

Every measurement runs in its own process, so its peak resident memory
(`ru_maxrss`) is its own; electra_tf and Hugging Face transformers (PyTorch)
run the same config on the same real text (SMS spam messages), one after the
other, and the ratios compare them:

- `finetune`: a classifier train step (forward, backward, clipped AdamW) on
  batches packed to `--max_seq_length`;
- `inference`: the classifier's forward pass on the same batches;
- `tagging_finetune`, `tagging_inference`: the same for a token tagger (`ElectraTagger` against HF's
  `ElectraForTokenClassification`) on Penn Treebank WSJ sentences (task_data.prepare_wsj_pos), a label on
  each word's first piece;
- `serving`: raw text in, probabilities out: electra_tf's exported SavedModel
  (`serving_default`, WordPiece in the graph, batches padded to their longest)
  against HF's fast tokenizer + forward, padded the same way;
- `pretrain`: the pre-training step of `pretrain_throughput.py`, for its memory;
- `data_builder`: `build_pretraining_dataset` (one process) over the embedded Wikipedia corpus: tokens
  written per second.

    python benchmarks/task_throughput.py --model_size=tiny
    python benchmarks/task_throughput.py --model_size=small
    python benchmarks/task_throughput.py --model_size=tiny --parts=tagging_finetune,tagging_inference

The last line printed is one JSON object with every figure.
"""

import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import electra_tf  # noqa: F401  (before TensorFlow: it switches oneDNN on, which is read at TF's load)
import tensorflow as tf

from common import FLAGS, hf_config, setup
from pretrain_throughput import electra_tf_step, hugging_face_step, seconds_per_step  # Also --steps, --threads.
from electra_tf import cli
from electra_tf import data_builder
from electra_tf import export
from electra_tf import finetuning
from electra_tf import optimization
from electra_tf import pretraining_data
from electra_tf import tagging
from electra_tf import task_data
from electra_tf import tasks
from electra_tf import tokenization

flags.DEFINE_string("part", None, "Run one measurement (e.g. finetune_hf, data_builder) in this process; "
                    "the parent run starts one process per measurement.")
flags.DEFINE_list("parts", None, "Measure only these parts (e.g. tagging_finetune,tagging_inference), each for "
                  "electra_tf and Hugging Face. Default: every part and the data builder.")

PARTS = ("pretrain", "finetune", "inference", "serving", "tagging_finetune", "tagging_inference")
MEASUREMENTS = [f"{p}_{i}" for p in PARTS for i in ("electra_tf", "hf")] + ["data_builder"]


def peak_memory_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB.


def sms_messages():
    """(label, text) rows of the SMS spam training split."""
    data = task_data.prepare_sms_spam(os.path.join(tempfile.gettempdir(), "electra_tf_bench_sms"))
    with open(data["train"], encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f]


def timed(step, batches, steps):
    """Seconds per call of `step` after two warm-up calls; `step` returns something that waits for the work."""
    for i in range(2):
        step(batches[i % len(batches)])
    start = time.time()
    for i in range(steps):
        step(batches[i % len(batches)])
    return (time.time() - start) / steps


def _four_batches(config, features):
    b = config.train_batch_size
    return [{k: features[k][i:i + b] for k in finetuning.FEATURES} for i in range(0, 4 * b, b)]


def packed_batches(config, task):
    """Four training batches of SMS messages (`classify`) or WSJ sentences with their tags (`tag`)."""
    tokenizer = tokenization.WordPieceTokenizer.for_config(pretraining_data.demo_vocab_file(), config)
    if task == "tag":
        data = wsj_pos()
        label_ids = {tag: i for i, tag in enumerate(data["tags"])}
        features, _, _ = tagging.featurize(tagging.read_conll(data["train"]), tokenizer, config.max_seq_length,
                                           label_ids)
        return _four_batches(config, features)
    examples = [tasks.Example(str(i), text, None, label) for i, (label, text) in enumerate(sms_messages())]
    return _four_batches(config, tasks.featurize(examples, tokenizer, config.max_seq_length, {"ham": 0, "spam": 1}))


@functools.cache
def wsj_pos():
    """The WSJ part-of-speech split, written once per process."""
    return task_data.prepare_wsj_pos(os.path.join(tempfile.gettempdir(), "electra_tf_bench_wsj"))


def num_labels(task):
    return len(wsj_pos()["tags"]) if task == "tag" else 2


def electra_tf_classifier(config, task="classify"):
    model = finetuning.ElectraTagger(config, num_labels(task), "bench") if task == "tag" else \
        finetuning.ElectraClassifier(config, 2, "bench")
    model.build_variables()
    model.compile(optimizer=optimization.create_optimizer(config, total_steps=1000, warmup_steps=10))
    model.optimizer.build(model.trainable_variables)
    return model


def hf_classifier(config, task="classify"):
    import transformers

    head = transformers.ElectraForTokenClassification if task == "tag" else \
        transformers.ElectraForSequenceClassification
    return head(hf_config(config, num_labels=num_labels(task)))


def torch_inputs(batch):
    import torch

    return {"input_ids": torch.tensor(batch["input_ids"], dtype=torch.long),
            "attention_mask": torch.tensor(batch["input_mask"], dtype=torch.long),
            "token_type_ids": torch.tensor(batch["segment_ids"], dtype=torch.long)}


def raw_batches(config):
    b, texts = config.train_batch_size, [text for _, text in sms_messages()]
    return [np.array(texts[i:i + b], dtype=object) for i in range(0, 4 * b, b)]


# Each returns seconds per batch (the data builder: seconds and tokens written).

def data_builder(config, jit):
    with tempfile.TemporaryDirectory() as out:
        corpus, _ = pretraining_data.write_demo_corpus(os.path.join(out, "corpus"))
        start = time.time()
        stats = data_builder.build_pretraining_dataset(
            corpus, pretraining_data.demo_vocab_file(), out, config.max_seq_length, num_out_files=8)
        return time.time() - start, stats.tokens


def _pretrain_seconds(step, batches):
    for _ in range(2):  # Warm-up: tracing.
        float(step(next(batches)))
    return seconds_per_step(step, batches, FLAGS.steps)


def pretrain_electra_tf(config, jit):
    _, _, model, batches = setup()
    return _pretrain_seconds(electra_tf_step(model, jit), batches)


def pretrain_hf(config, jit):
    _, _, _, batches = setup()
    return _pretrain_seconds(hugging_face_step(config, FLAGS.threads or os.cpu_count()), batches)  # As shipped.


def serving_electra_tf(config, jit):
    vocab_file = pretraining_data.demo_vocab_file()
    module = export.ServingModule(electra_tf_classifier(config), tokenization.WordPieceTokenizer.for_config(
        vocab_file, config), vocab_file, "classifier", ("text",), config.max_seq_length, labels=["ham", "spam"])
    with tempfile.TemporaryDirectory() as out:
        tf.saved_model.save(module, out, signatures=module.signatures())
        serve = tf.saved_model.load(out).signatures["serving_default"]
        return timed(lambda t: serve(text=tf.constant(t))["probabilities"].numpy(), raw_batches(config), FLAGS.steps)


def serving_hf(config, jit):
    import torch
    import transformers

    tokenizer = transformers.BertTokenizerFast(pretraining_data.demo_vocab_file(), do_lower_case=True)
    model = hf_classifier(config).eval()

    def step(texts):
        with torch.no_grad():
            inputs = tokenizer(list(texts), padding="longest", truncation=True, max_length=config.max_seq_length,
                               return_tensors="pt")
            return torch.softmax(model(**inputs).logits, -1).numpy()

    return timed(step, raw_batches(config), FLAGS.steps)


def finetune_electra_tf(config, jit, task="classify"):
    train = tf.function(electra_tf_classifier(config, task).train_step, jit_compile=jit)
    return timed(lambda b: float(train(b)["loss"]), packed_batches(config, task), FLAGS.steps)


def inference_electra_tf(config, jit, task="classify"):
    model = electra_tf_classifier(config, task)
    forward = tf.function(lambda b: model(b, training=False), jit_compile=jit)
    return timed(lambda b: forward(b).numpy(), packed_batches(config, task), FLAGS.steps)


def finetune_hf(config, jit, task="classify"):
    import torch

    model = hf_classifier(config, task).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, eps=1e-6,
                                  weight_decay=config.weight_decay_rate)

    def step(b):
        loss = model(**torch_inputs(b), labels=torch.tensor(b["label_ids"], dtype=torch.long)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        return loss.item()

    # HF ignores label -100 in the loss, the value tagging.IGNORE gives unlabelled pieces.
    return timed(step, packed_batches(config, task), FLAGS.steps)


def inference_hf(config, jit, task="classify"):
    import torch

    model = hf_classifier(config, task).eval()

    def forward(b):
        with torch.no_grad():
            return model(**torch_inputs(b)).logits.numpy()

    return timed(forward, packed_batches(config, task), FLAGS.steps)


tagging_finetune_electra_tf = functools.partial(finetune_electra_tf, task="tag")
tagging_inference_electra_tf = functools.partial(inference_electra_tf, task="tag")
tagging_finetune_hf = functools.partial(finetune_hf, task="tag")
tagging_inference_hf = functools.partial(inference_hf, task="tag")


def child(part):
    config = cli.load_config(FLAGS)
    cli.set_precision(FLAGS)
    if part not in MEASUREMENTS:
        raise app.UsageError(f"--part={part!r}: choose one of {MEASUREMENTS}")
    if part.endswith("_hf"):
        import torch

        torch.set_num_threads(FLAGS.threads or os.cpu_count())
    result = globals()[part](config, cli.jit_compile(FLAGS))
    seconds, tokens = result if isinstance(result, tuple) else (result, None)
    print(json.dumps({"seconds": seconds, "tokens": tokens, "peak_memory_mb": round(peak_memory_mb())}))


def parent():
    config = cli.load_config(FLAGS)
    passed = [a for a in sys.argv[1:] if not a.startswith("--part")]
    parts = FLAGS.parts or PARTS
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise app.UsageError(f"--parts: unknown {unknown}; choose from {list(PARTS)}")
    measurements = [m for m in MEASUREMENTS
                    if FLAGS.parts is None or m.removesuffix("_electra_tf").removesuffix("_hf") in parts]
    results = {"model_size": FLAGS.model_size, "batch": config.train_batch_size, "seq": config.max_seq_length}
    for key in measurements:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), f"--part={key}", *passed],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{key} failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results[f"{key}_peak_memory_mb"] = figures["peak_memory_mb"]
        if key == "data_builder":
            results["data_builder_tokens_per_second"] = round(figures["tokens"] / figures["seconds"])
            results["data_builder_seconds"] = round(figures["seconds"], 1)
        else:
            results[f"{key}_examples_per_second"] = round(config.train_batch_size / figures["seconds"], 1)
        print(json.dumps({key: figures}), flush=True)
    for part in parts:
        results[f"{part}_ratio"] = round(results[f"{part}_electra_tf_examples_per_second"]
                                         / results[f"{part}_hf_examples_per_second"], 2)
    print(json.dumps(results))


def main(argv):
    del argv
    if FLAGS.part:
        child(FLAGS.part)
    else:
        parent()


if __name__ == "__main__":
    app.run(main)
