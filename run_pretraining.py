"""Pre-trains ELECTRA (or the MLM baseline): `electra-pretrain` run from a checkout.

The program is electra_tf/commands/pretrain.py; `python run_pretraining.py --help` shows its usage.
"""

from electra_tf import commands
from electra_tf.commands import pretrain

main = pretrain.main

if __name__ == "__main__":
    commands.run(pretrain)
