"""One ELECTRA pre-training step against an independent reference: Hugging Face's torch models.

Forward parity of each model is tested in test_checkpoint_interop; this checks
what forward parity cannot: the joint loss and every gradient, through the
shared embeddings, the generator's stop-gradient sampling and the loss weights.
"""

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import make_pretrainer  # noqa: E402
from electra_tf import checkpoint_interop as interop  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf.config import ElectraConfig  # noqa: E402


def _real_batch(data_dir, batch):
    files = pretraining_data.tfrecord_files(data_dir, pretraining_data.TRAIN_PREFIX)
    features = next(iter(pretraining_data.make_dataset(files, batch, 64, False)))
    return {k: v.numpy() for k, v in features.items()}


def _hf_pair(pretrainer, config, tmp_path):
    names = interop.variable_names(pretrainer)
    vocab = pretraining_data.demo_vocab_file()
    disc_names = {n: v for n, v in names.items() if not n.startswith("generator")}
    gen_names = {n: v for n, v in names.items() if n.startswith(("generator", "electra/embeddings/"))}
    interop.write_hf(disc_names, config, vocab, str(tmp_path / "disc"))
    interop.write_hf(gen_names, config, vocab, str(tmp_path / "gen"), generator=True)
    disc = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "disc").eval()
    gen = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "gen").eval()
    # ELECTRA shares one embedding block: make the torch pair share it too.
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    return names, disc, gen


def _hf_parameter(name, disc, gen):
    generator = name.startswith(("generator/", "generator_predictions/"))
    model = gen if generator else disc
    return dict(model.named_parameters(remove_duplicate=False))[interop.authors_to_hf(name, generator)]


def test_one_step_losses_and_gradients_equal_hugging_face_torch(demo_data_dir, tmp_path):
    # tiny's shape (E=128, H=128, generator H=32 so both embeddings_project layers exist), 2 layers.
    config = ElectraConfig.from_size("tiny", {"max_seq_length": 64, "dropout_prob": 0.0})
    pretrainer = make_pretrainer(config)
    for v in pretrainer.trainable_variables:  # Non-trivial LayerNorms and biases, so a mix-up cannot hide.
        if v.path.endswith(("gamma", "beta", "bias")):
            v.assign(v + tf.random.stateless_normal(v.shape, [1, len(v.path)], 0.1))
    features = _real_batch(demo_data_dir, 8)

    with tf.GradientTape() as tape:
        outputs = pretrainer(features, training=True)
        total, mlm, disc_loss = pretrainer.compute_losses(features, outputs)
    variables = pretrainer.trainable_variables
    grads = dict(zip((v.path for v in variables), tape.gradient(total, variables)))
    masked = {k: v.numpy() for k, v in outputs["masked"].items()}
    assert outputs["labels"].numpy().sum() > 10  # The generator's samples really replaced tokens.

    names, disc, gen = _hf_pair(pretrainer, config, tmp_path)
    long = {k: torch.tensor(v, dtype=torch.long) for k, v in features.items()}
    gen_logits = gen(input_ids=torch.tensor(masked["input_ids"], dtype=torch.long),
                     attention_mask=long["input_mask"], token_type_ids=long["segment_ids"]).logits
    positions = torch.tensor(masked["positions"], dtype=torch.long)
    at_masked = torch.gather(gen_logits, 1, positions[..., None].expand(-1, -1, gen_logits.shape[-1]))
    weights = torch.tensor(masked["weights"])
    ce = torch.nn.functional.cross_entropy(at_masked.transpose(1, 2), torch.tensor(masked["ids"], dtype=torch.long),
                                           reduction="none")
    ref_mlm = (ce * weights).sum() / weights.sum()
    # The replacements are samples: feed the discriminator the ones electra_tf drew (no gradient flows back).
    disc_logits = disc(input_ids=torch.tensor(outputs["fake_ids"].numpy(), dtype=torch.long),
                       attention_mask=long["input_mask"], token_type_ids=long["segment_ids"]).logits
    real = long["input_mask"].float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        disc_logits, torch.tensor(outputs["labels"].numpy(), dtype=torch.float32), reduction="none")
    ref_disc = (bce * real).sum() / real.sum()
    ref_total = config.gen_weight * ref_mlm + config.disc_weight * ref_disc
    ref_total.backward()

    np.testing.assert_allclose([mlm.numpy(), disc_loss.numpy(), total.numpy()],
                               [ref_mlm.item(), ref_disc.item(), ref_total.item()], rtol=1e-4)
    assert len(names) == len(variables)  # Every trainable variable is compared.
    for name, variable in names.items():
        ours = tf.convert_to_tensor(grads[variable.path]).numpy()
        theirs = _hf_parameter(name, disc, gen).grad.numpy()
        theirs = interop._from_torch_layout(interop.authors_to_hf(name), theirs)
        ours = ours.reshape(theirs.shape)
        scale = np.abs(theirs).max()
        assert scale > 0, name
        assert np.abs(ours - theirs).max() <= 2e-3 * scale + 1e-7, name
