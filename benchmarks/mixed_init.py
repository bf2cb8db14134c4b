"""Which part of a pre-trained encoder fine-tuning gains or loses from: a model dir holding the pre-trained
embeddings or the pre-trained Transformer layers, the rest freshly initialised as a new pre-trainer is.

    python benchmarks/mixed_init.py --init_checkpoint=runs/vocab8k/pretrain_electra --keep=embeddings \
        --output_dir=runs/mixed/embeddings
    python run_finetuning.py --task=text_classification ... --init_checkpoint=runs/mixed/embeddings

`--keep=embeddings`: word, position and segment embeddings and their layer norm (and the projection to the
hidden size where E != H); `--keep=layers`: every Transformer layer. The output is an electra_tf model dir
(config.json and vocab.txt of the input), so run_finetuning.py and convert_checkpoint.py take it.
"""

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from electra_tf import checkpoint_interop  # noqa: E402
from electra_tf import tokenization  # noqa: E402
from electra_tf.config import ElectraConfig  # noqa: E402
from electra_tf.pretrainer import ElectraPretrainer  # noqa: E402
import keras  # noqa: E402

flags.DEFINE_string("init_checkpoint", None, "An electra_tf model dir (or one of its checkpoints).")
flags.DEFINE_enum("keep", None, ["embeddings", "layers"], "The pre-trained part to keep.")
flags.DEFINE_string("output_dir", None, "Where the mixed model dir goes.")
flags.mark_flags_as_required(["init_checkpoint", "keep", "output_dir"])
FLAGS = flags.FLAGS

PARTS = {"embeddings": ("electra/embeddings",), "layers": ("electra/encoder/",)}


def main(argv):
    del argv
    source = checkpoint_interop.detect_format(FLAGS.init_checkpoint)
    if source != "native":
        raise app.UsageError(f"--init_checkpoint={FLAGS.init_checkpoint} is {source}; convert it to an "
                             "electra_tf model dir first (convert_checkpoint.py)")
    model_dir = checkpoint_interop.model_dir_of(FLAGS.init_checkpoint)
    config = ElectraConfig.from_json_file(os.path.join(model_dir, "config.json"))
    vocab_file = os.path.join(model_dir, "vocab.txt")
    tokenizer = tokenization.WordPieceTokenizer.for_config(vocab_file, config)
    keras.utils.set_random_seed(config.seed)
    fresh = ElectraPretrainer(config, {"cls": tokenizer.cls_id, "sep": tokenizer.sep_id, "mask": tokenizer.mask_id})
    fresh.build_variables()
    names = checkpoint_interop.variable_names(fresh)
    arrays = checkpoint_interop.read_checkpoint(FLAGS.init_checkpoint, source)
    kept = sorted(n for n in names if n.startswith(PARTS[FLAGS.keep]))
    if not kept:
        raise ValueError(f"{FLAGS.init_checkpoint}: no variable of {FLAGS.keep} ({PARTS[FLAGS.keep]})")
    checkpoint_interop.assign({n: names[n] for n in kept}, {n: arrays[n] for n in kept})
    checkpoint_interop.write_native(FLAGS.output_dir, config, vocab_file, names)
    print(f"{FLAGS.output_dir}: {len(kept)} pre-trained variables ({FLAGS.keep}) of {len(names)}, the rest fresh")


if __name__ == "__main__":
    app.run(main)
