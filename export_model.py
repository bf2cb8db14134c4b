"""Exports a model as a SavedModel for TF Serving: `electra-export` run from a checkout.

The program is electra_tf/commands/export.py; `python export_model.py --help` shows its usage.
"""

from electra_tf import commands
from electra_tf.commands import export

main = export.main

if __name__ == "__main__":
    commands.run(export)
