"""What checking shards before training costs: `records.verify` over about `--gigabytes` of real shards.

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
    print(json.dumps({"files": len(files), "gigabytes": size / 1e9, "records": sum(counts.values()),
                      "seconds": seconds, "seconds_per_gb": seconds / (size / 1e9)}))


if __name__ == "__main__":
    app.run(main)
