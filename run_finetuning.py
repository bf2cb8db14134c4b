"""Fine-tunes a pre-trained ELECTRA discriminator: `electra-finetune` run from a checkout.

The program is electra_tf/commands/finetune.py; `python run_finetuning.py --help` shows its usage.
"""

from electra_tf import commands
from electra_tf.commands import finetune

main = finetune.main

if __name__ == "__main__":
    commands.run(finetune)
