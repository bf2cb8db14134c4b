"""What a run pays before its first step: checking its shards, and finding its place in the data on resume.

`records.verify` reads about `--gigabytes` of real shards through; then a
resumed run's input (`pretraining_data.make_dataset(..., start_step=k)`) is
timed to its first batch at several positions of the first epoch, against a
fresh start: `input_order.record_stream` skips whole file groups for free and
reads at most one group (4 files) to reach its example.

The demo corpus's shards (real Wikipedia text at `--max_seq_length`, 0.77 MB
each) are copied, or concatenated into shards of about `--shard_megabytes`
(TFRecord files concatenate into valid TFRecord files), until the directory
holds the size asked for, and the whole
read-through (framing, checksums, size) is timed. The copies were just written,
so they are read from the page cache: the figure is the check's CPU cost; from
a cold disk it is at most the disk's read time.

    python benchmarks/verify_data.py --gigabytes=1
    python benchmarks/verify_data.py --gigabytes=1 --shard_megabytes=32

The last line printed is one JSON object with the figures.
"""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import electra_tf  # noqa: E402,F401  (before TensorFlow: it switches oneDNN on)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf import input_order  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf import records  # noqa: E402

flags.DEFINE_float("gigabytes", 1.0, "Size of the shard directory to verify.")
flags.DEFINE_integer("shard_megabytes", 0, "Concatenate demo shards into shards of about this size (0: as built).")
flags.DEFINE_integer("max_seq_length", 128, "Example length of the demo shards.")
flags.DEFINE_string("work_dir", "/tmp/electra_tf_verify", "Where the demo shards are built and copied.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    source = os.path.join(FLAGS.work_dir, "demo")
    pretraining_data.prepare_demo_data(source, FLAGS.max_seq_length)
    shards = pretraining_data.tfrecord_files(source, pretraining_data.TRAIN_PREFIX)
    target = os.path.join(FLAGS.work_dir, f"shards_{FLAGS.shard_megabytes}mb")
    os.makedirs(target, exist_ok=True)
    files, size, i = [], 0, 0
    while size < FLAGS.gigabytes * 1e9:
        path = os.path.join(target, f"{pretraining_data.TRAIN_PREFIX}.tfrecord-{len(files)}")
        if not os.path.exists(path):
            with open(path, "wb") as out:
                while True:
                    with open(shards[i % len(shards)], "rb") as part:
                        shutil.copyfileobj(part, out)
                    i += 1
                    if out.tell() >= FLAGS.shard_megabytes * 1e6:
                        break
        files.append(path)
        size += os.path.getsize(path)
    start = time.time()
    counts = records.verify(files)
    seconds = time.time() - start
    result = {"files": len(files), "gigabytes": size / 1e9, "records": sum(counts.values()),
              "seconds": seconds, "seconds_per_gb": seconds / (size / 1e9)}
    print(json.dumps(result))
    result["resume"] = resume_costs(files, counts)
    print(json.dumps(result))


def _first_batch_seconds(files, counts, start):
    begin = time.time()
    batch = next(iter(pretraining_data.make_dataset(files, 1, FLAGS.max_seq_length, True, start_step=start,
                                                    counts=counts)))
    assert batch["input_ids"].shape == (1, FLAGS.max_seq_length)
    return time.time() - begin


def resume_costs(files, counts):
    """Seconds to a resumed run's first batch (global batch 1, so the step is the example) at chosen positions."""
    per_file = np.array([counts[p] for p in files])
    order = input_order._permutation(len(files), 0, 0).numpy()  # The first epoch's file order (seed 0).
    group_sizes = [int(per_file[g].sum()) for g in np.array_split(order, range(4, len(files), 4))]
    group_starts = np.cumsum([0] + group_sizes)
    middle = len(group_sizes) // 2
    positions = {"fresh start": 0,
                 f"start of group {middle} of {len(group_sizes)}": int(group_starts[middle]),
                 f"last record of group {middle} (the most a resume reads)": int(group_starts[middle + 1]) - 1,
                 "second epoch, first group's last record": int(sum(group_sizes) + group_sizes[0] - 1)}
    costs = {}
    for name, start in positions.items():
        seconds = _first_batch_seconds(files, counts, start)
        offset = start % sum(group_sizes)  # Whole epochs and the groups before its own are skipped unread.
        read = offset - int(group_starts[np.searchsorted(group_starts, offset, "right") - 1])
        costs[name] = {"example": start, "records_read_to_reach_it": read, "seconds": round(seconds, 3)}
        print(f"{name}: example {start:,}, {read:,} records read to reach it, {seconds:.2f} s to the first batch")
    return costs


if __name__ == "__main__":
    app.run(main)
