"""Converts checkpoints between the authors' TF1 format, Hugging Face and electra_tf: `electra-convert` run from a checkout.

The program is electra_tf/commands/convert.py; `python convert_checkpoint.py --help` shows its usage.
"""

from electra_tf import commands
from electra_tf.commands import convert

main = convert.main

if __name__ == "__main__":
    commands.run(convert)
