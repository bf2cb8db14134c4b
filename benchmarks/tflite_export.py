"""TFLite exports against the SavedModel: file size, single-example latency, and int8 accuracy on TREC.

1. Fine-tunes a tiny classifier on TREC question classes (task_data.prepare_trec; random init unless
   --init_checkpoint) and builds a small classifier with random weights (size and latency do not depend on them).
2. Exports each as a SavedModel (export_model.export_model) and as TFLite float and dynamic int8
   (tflite.export_tflite).
3. Times one raw-text question per call, the median of --runs calls after --warmup, for the SavedModel's
   `serving_default`, TFLite `text.tflite` and `ids.tflite` (ids tokenized beforehand), float and int8.
4. Scores the tiny classifier's TREC dev accuracy with the SavedModel, TFLite float and TFLite int8 on raw
   text, and how often int8 and float agree.

    python benchmarks/tflite_export.py --work_dir=runs/tflite_bench      # tiny: about 30 minutes on 2 busy CPU cores

Writes <work_dir>/tflite.json and prints a Markdown table.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from electra_tf import checkpoint_interop  # noqa: E402
from electra_tf import config as config_lib  # noqa: E402
from electra_tf import export  # noqa: E402
from electra_tf import finetuning  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf import task_data  # noqa: E402
from electra_tf import tasks  # noqa: E402
from electra_tf import tflite  # noqa: E402
from electra_tf import tokenization  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

flags.DEFINE_string("work_dir", "runs/tflite_bench", "Where the data, runs, exports and results go.")
flags.DEFINE_list("sizes", ["tiny", "small"], "Model sizes whose size and latency are measured.")
flags.DEFINE_integer("runs", 200, "Timed calls per model (the median is reported).")
flags.DEFINE_integer("warmup", 20, "Untimed calls first.")
flags.DEFINE_integer("max_seq_length", 32, "Tokens per example (TREC questions are short).")
flags.DEFINE_string("init_checkpoint", None, "Pre-trained tiny weights for the TREC fine-tuning (default: random).")
flags.DEFINE_string("question", "What is the tallest mountain in South America?", "The timed example.")
FLAGS = flags.FLAGS


def finetune_trec(data):
    model_dir = os.path.join(FLAGS.work_dir, "finetune_trec_tiny")
    if not os.path.exists(os.path.join(model_dir, "results.json")):
        command = [sys.executable, os.path.join(REPO, "run_finetuning.py"), "--task=text_classification",
                   "--text_a_column=1", "--label_column=0", f"--train_file={data['train']}",
                   f"--dev_file={data['dev']}", f"--max_seq_length={FLAGS.max_seq_length}", "--model_size=tiny",
                   f"--model_dir={model_dir}", "--num_trials=1",
                   *([f"--init_checkpoint={FLAGS.init_checkpoint}"] if FLAGS.init_checkpoint else [])]
        logging.info("running %s", " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return os.path.join(model_dir, "trial_1")


def random_classifier(size, labels):
    """A classifier trial dir of `size` with random weights, in run_finetuning.py's layout."""
    model_dir = os.path.join(FLAGS.work_dir, f"random_{size}")
    if not os.path.exists(os.path.join(model_dir, "task.json")):
        config = config_lib.ElectraConfig.from_size(size, {"max_seq_length": FLAGS.max_seq_length})
        model = finetuning.ElectraClassifier(config, len(labels), "trec")
        model.build_variables()
        checkpoint_interop.write_native(model_dir, config, pretraining_data.demo_vocab_file(),
                                        model.variable_names())
        tasks.write_task_file(model_dir, {"task": "trec", "kind": "classifier", "labels": labels,
                                          "text_pair": False})
    return model_dir


def exports(name, model_dir):
    """{"saved_model": dir, "float": tflite paths, "int8": tflite paths}, exported once."""
    out = os.path.join(FLAGS.work_dir, "exports")
    saved = os.path.join(out, name, "1")
    if not os.path.exists(saved):
        export.export_model(model_dir, out, "classifier", name, 1)
    paths = {"saved_model": saved}
    for quantize, suffix in (("none", "float"), ("dynamic_int8", "int8")):
        folder = os.path.join(out, f"{name}_tflite_{suffix}")
        if not os.path.exists(folder):
            tflite.export_tflite(model_dir, out, "classifier", os.path.basename(folder), quantize=quantize)
        paths[suffix] = {endpoint: os.path.join(folder, file) for endpoint, file in tflite.FILES.items()}
    return paths


def megabytes(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 1e6
    return os.path.getsize(path) / 1e6


def median_ms(call):
    for _ in range(FLAGS.warmup):
        call()
    times = []
    for _ in range(FLAGS.runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def runners(paths):
    """One raw-text call per format: SavedModel, TFLite float and int8 (text.tflite)."""
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"]
    calls = {"saved_model": lambda text: served(text=tf.constant([text]))["probabilities"].numpy()}
    for suffix in ("float", "int8"):
        runner = tflite.load_interpreter(paths[suffix]["text"]).get_signature_runner()
        calls[suffix] = lambda text, runner=runner: runner(text=np.array([text]))["probabilities"]
    return calls


def measure(name, paths, tokenizer):
    calls = runners(paths)
    ids, segments, _ = tokenization.pack_inputs(tokenizer, [tf.constant([FLAGS.question])], FLAGS.max_seq_length)
    features = {"input_ids": ids.to_tensor().numpy(), "segment_ids": segments.to_tensor().numpy()}
    features["input_mask"] = np.ones_like(features["input_ids"])
    row = {"model": name, "tokens": int(features["input_ids"].shape[1]),
           "saved_model_mb": megabytes(paths["saved_model"])}
    row["saved_model_ms"] = median_ms(lambda: calls["saved_model"](FLAGS.question))
    for suffix in ("float", "int8"):
        ids_runner = tf.lite.Interpreter(model_path=paths[suffix]["ids"]).get_signature_runner()
        row[f"{suffix}_text_mb"] = megabytes(paths[suffix]["text"])
        row[f"{suffix}_ids_mb"] = megabytes(paths[suffix]["ids"])
        row[f"{suffix}_text_ms"] = median_ms(lambda: calls[suffix](FLAGS.question))
        row[f"{suffix}_ids_ms"] = median_ms(lambda: ids_runner(**features))
    logging.info("%s", row)
    return row


def dev_accuracy(paths, dev_file, labels):
    calls = runners(paths)
    gold, predicted = [], {name: [] for name in calls}
    with open(dev_file, encoding="utf-8") as f:
        for line in f:
            label, question = line.rstrip("\n").split("\t", 1)
            gold.append(labels.index(label))
            for name, call in calls.items():
                predicted[name].append(int(np.argmax(call(question))))
    gold = np.array(gold)
    result = {name: float(np.mean(np.array(p) == gold)) for name, p in predicted.items()}
    result["int8_agrees_with_float"] = float(np.mean(np.array(predicted["int8"]) == np.array(predicted["float"])))
    result["examples"] = len(gold)
    return result


def main(argv):
    del argv
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    data = task_data.prepare_trec(os.path.join(FLAGS.work_dir, "trec"))
    trial = finetune_trec(data)
    labels = tasks.read_task_file(trial)["labels"]
    tokenizer = tokenization.WordPieceTokenizer(os.path.join(trial, "vocab.txt"))
    models = {"tiny": trial} | {size: random_classifier(size, labels) for size in FLAGS.sizes if size != "tiny"}
    paths = {size: exports(f"trec_{size}", models[size]) for size in FLAGS.sizes}
    rows = [measure(size, paths[size], tokenizer) for size in FLAGS.sizes]
    accuracy = dev_accuracy(paths["tiny"], data["dev"], labels)
    results = {"cpu": os.cpu_count(), "runs": FLAGS.runs, "question": FLAGS.question, "latency": rows,
               "trec_dev_accuracy_tiny": accuracy}
    with open(os.path.join(FLAGS.work_dir, "tflite.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("| model | format | file MB | ms, raw text | ms, token ids |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | SavedModel | {row['saved_model_mb']:.1f} | {row['saved_model_ms']:.2f} | |")
        for suffix in ("float", "int8"):
            print(f"| {row['model']} | TFLite {suffix} | {row[f'{suffix}_text_mb']:.1f} (ids: "
                  f"{row[f'{suffix}_ids_mb']:.1f}) | {row[f'{suffix}_text_ms']:.2f} | {row[f'{suffix}_ids_ms']:.2f} |")
    print(json.dumps(accuracy))


if __name__ == "__main__":
    app.run(main)
