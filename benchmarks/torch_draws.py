"""Generator accuracy of saved pairs on the torch reference's own held-out mask draws.

`reference_curves.py` scores the torch reference on one draw of its masking rule
(`HELDOUT_MASK_SEED`); this scores any pair saved as a Hugging Face dir (the
torch runs, or an electra_tf run converted with `convert_checkpoint.py
--output_format=hf`) on that draw and on others, so one can tell whether a gap
in the curves is the weights or the positions.

Usage:
  python benchmarks/torch_draws.py --runs=runs/curves1600/torch_seed0,/tmp/tf_seed0_hf --num_train_steps=1600
"""

import json

from absl import app
from absl import flags

from common import FLAGS, HELDOUT_MASK_SEED, heldout_batches
from electra_tf import cli
import reference_curves

flags.DEFINE_list("runs", None, "Hugging Face dirs of an ElectraForPreTraining with its generator in generator/.")
flags.DEFINE_list("draws", [str(HELDOUT_MASK_SEED), "1", "2", "3", "4", "5"], "Seeds of torch's mask draws.")
flags.mark_flag_as_required("runs")


def main(argv):
    del argv
    import torch
    import transformers

    config = cli.load_config(FLAGS)
    batches = heldout_batches(config)
    model = reference_curves.TorchElectra(config, config.seed)
    for run in FLAGS.runs:
        model.disc.load_state_dict(transformers.ElectraForPreTraining.from_pretrained(run).state_dict())
        model.gen.load_state_dict(transformers.ElectraForMaskedLM.from_pretrained(f"{run}/generator").state_dict())
        model.gen.eval(), model.disc.eval()
        accuracy = {}
        with torch.no_grad():
            for draw in FLAGS.draws:
                random, correct, total = torch.Generator().manual_seed(int(draw)), 0, 0
                for batch in batches:
                    ids, _, chosen, logits, _, _ = model._forward(batch, random)
                    correct += int((logits.argmax(-1) == ids[chosen]).sum())
                    total += int(chosen.sum())
                accuracy[draw] = round(correct / total, 4)
        print(json.dumps({"run": run, "gen_accuracy_by_draw": accuracy}))


if __name__ == "__main__":
    app.run(main)
