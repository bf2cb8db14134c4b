"""The command-line programs, each an absl app.

Installed as console commands (`electra-pretrain`, `electra-finetune`,
`electra-build-data`, `electra-export`, `electra-convert`) and called by the
checkout's top-level scripts (`run_pretraining.py`, ...): one `main` serves both.
"""

import sys

from absl import app


def run(module):
    """Runs `module.main` as an absl app, with the module's docstring as `--help`'s usage text.

    absl prints the `__main__` module's docstring; under a console command that
    module is pip's generated wrapper, which has none.
    """
    sys.modules["__main__"].__doc__ = module.__doc__
    app.run(module.main)
