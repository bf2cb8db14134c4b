"""Writes pre-training TFRecords from a directory of text: `electra-build-data` run from a checkout.

The program is electra_tf/commands/build_data.py; `python build_pretraining_dataset.py --help` shows its usage.
"""

from electra_tf import commands
from electra_tf.commands import build_data

main = build_data.main

if __name__ == "__main__":
    commands.run(build_data)
