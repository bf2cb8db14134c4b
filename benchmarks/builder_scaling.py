"""The data builder with 1 and N processes, and what bounds their ratio on this machine.

Each round runs the whole `build_pretraining_dataset.py` command with 1 process
and with `--num_processes` (in that order, so a drift of the machine's speed
hits both), and medians are reported. Two more measurements say how far N
processes can beat one here at all:

- start-up: a worker's fixed cost before its first line (importing TensorFlow
  and tf-text, building the tokenizer), paid by the 1-process run once and by
  each of the N workers at the same time, so it does not shrink with N;
- side by side: a pure-Python loop timed alone and as N copies at once; on a
  machine whose cores are shared (hyper-threads, a busy host), each copy runs
  slower, and no CPU-bound program gets more out of N processes than N over
  that slowdown.

`ceiling` combines them (Amdahl's law): the 1-process time over start-up plus
the rest divided by N and multiplied by the slowdown. With `--authors_dir`
(a checkout of google-research/electra), the authors' script is timed once on
the same corpus with as many processes.

    python scripts/prepare_corpus_mix.py --output_dir=/tmp/mix
    python benchmarks/builder_scaling.py --corpus_dir=/tmp/mix --authors_dir=/tmp/electra

The last line printed is one JSON object with the figures.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

flags.DEFINE_string("corpus_dir", None, "Text corpus to build (e.g. the ~60 MB mix of scripts/prepare_corpus_mix.py).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (default: the demo's BERT uncased vocab).")
flags.DEFINE_integer("num_processes", 2, "Processes of the parallel build, compared with 1.")
flags.DEFINE_integer("num_out_files", 16, "Shards per build.")
flags.DEFINE_integer("rounds", 3, "Rounds of (1 process, N processes); medians are reported.")
flags.DEFINE_integer("loop_iterations", 30_000_000, "Iterations of the pure-Python loop timed alone and side by side.")
flags.DEFINE_string("authors_dir", None, "A google-research/electra checkout: time its build_pretraining_dataset.py too.")
flags.mark_flag_as_required("corpus_dir")
FLAGS = flags.FLAGS

_LOOP = "s = 0\nfor i in range({}): s += i\n"
_STARTUP = "from electra_tf import records, tokenization\ntokenization.WordPieceTokenizer({!r})\n"


def timed(commands, cwd=ROOT):
    """Wall seconds until all `commands` (started together) have finished, and their CPU seconds (user)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    start = time.time()
    processes = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    for command, process in zip(commands, processes):
        _, err = process.communicate()
        if process.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{err.decode()[-2000:]}")
    return time.time() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before


def build_command(vocab, output_dir, processes):
    return [sys.executable, "build_pretraining_dataset.py", f"--corpus_dir={FLAGS.corpus_dir}",
            f"--vocab_file={vocab}", f"--output_dir={output_dir}", "--max_seq_length=128",
            f"--num_out_files={FLAGS.num_out_files}", f"--num_processes={processes}"]


def count_records(output_dir):
    """Records in a build's shards (the authors' script names them as electra_tf does), read through."""
    # Loads TensorFlow, in this process only: the timed commands run in their own.
    from electra_tf import pretraining_data
    from electra_tf import records
    return sum(records.verify(pretraining_data.tfrecord_files(output_dir, pretraining_data.TRAIN_PREFIX)).values())


def main(argv):
    del argv
    if FLAGS.vocab_file:
        vocab = FLAGS.vocab_file
    else:
        from electra_tf import pretraining_data
        vocab = pretraining_data.demo_vocab_file()
    n = FLAGS.num_processes
    walls, users = {1: [], n: []}, {1: [], n: []}
    with tempfile.TemporaryDirectory() as work:
        for r in range(FLAGS.rounds):
            for processes in (1, n):
                wall, user = timed([build_command(vocab, os.path.join(work, f"out{r}_{processes}"), processes)])
                walls[processes].append(wall)
                users[processes].append(user)
                print(f"round {r}: {processes} process(es) {wall:.1f} s (user {user:.1f} s)", flush=True)
        examples = {p: count_records(os.path.join(work, f"out0_{p}")) for p in (1, n)}
        authors = None
        if FLAGS.authors_dir:
            out = os.path.join(work, "authors")
            wall, _ = timed([[sys.executable, "build_pretraining_dataset.py", "--corpus-dir", FLAGS.corpus_dir,
                              "--vocab-file", vocab, "--output-dir", out, "--max-seq-length", "128",
                              "--num-processes", str(n)]], cwd=FLAGS.authors_dir)
            authors = {"seconds": round(wall, 1), "examples": count_records(out)}
            print(f"authors' script, {n} processes: {wall:.1f} s", flush=True)
    startup = statistics.median(timed([[sys.executable, "-c", _STARTUP.format(vocab)]])[0]
                                for _ in range(FLAGS.rounds))
    loop = [sys.executable, "-c", _LOOP.format(FLAGS.loop_iterations)]
    alone, together = [], []
    for _ in range(FLAGS.rounds):
        alone.append(timed([loop])[0])
        together.append(timed([loop] * n)[0])
    one, many = statistics.median(walls[1]), statistics.median(walls[n])
    slowdown = statistics.median(together) / statistics.median(alone)
    print(json.dumps({
        "corpus_dir": FLAGS.corpus_dir, "num_processes": n, "rounds": FLAGS.rounds,
        "seconds_1": round(one, 1), f"seconds_{n}": round(many, 1),
        "runs_1": [round(w, 1) for w in walls[1]], f"runs_{n}": [round(w, 1) for w in walls[n]],
        "user_seconds_1": round(statistics.median(users[1]), 1),
        f"user_seconds_{n}": round(statistics.median(users[n]), 1),
        "ratio": round(one / many, 2), "examples_1": examples[1], f"examples_{n}": examples[n],
        "startup_seconds": round(startup, 2), "side_by_side_slowdown": round(slowdown, 2),
        "ceiling": round(one / (startup + (one - startup) / n * slowdown), 2),
        "authors": authors, "ratio_vs_authors": round(authors["seconds"] / many, 1) if authors else None}))


if __name__ == "__main__":
    app.run(main)
