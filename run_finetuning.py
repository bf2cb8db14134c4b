"""Fine-tuning ELECTRA on GLUE and on your own labelled text: NOT IMPLEMENTED YET.

This script is a placeholder until the fine-tuning issue lands (GLUE tasks as
the authors read them, a generic text-classification task, layer-wise LR
decay). Running it exits with an error; pre-train with run_pretraining.py.
"""

from absl import app


def main(argv):
    del argv
    raise SystemExit("run_finetuning.py is not implemented yet: fine-tuning (GLUE, text_classification) "
                     "is tracked as the next issue. See README.md.")


if __name__ == "__main__":
    app.run(main)
