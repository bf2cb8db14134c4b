"""keras-hub presets: written ones load in keras-hub with the discriminator's outputs, and read back bit for bit."""

import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras_hub.src.utils.keras_utils import gelu_approximate

from electra_tf import checkpoint_interop as interop
from electra_tf import finetuning
from electra_tf import modeling
from electra_tf import tokenization
from electra_tf.config import ElectraConfig

# keras-hub's ElectraBackbone computes GELU with the tanh approximation, ELECTRA with erf. On this model
# (random initialisation, LayerNorms and biases shifted by N(0, 0.1)) the sequence outputs then differ by at
# most 1.7e-5 (2 layers, E128 H128; 1.4e-5 with E64), 1.7e-4 for the 12-layer small size: the bound leaves
# room for other seeds, while a weight in the wrong place moves them by ~1e-1 (checked below).
GELU_BOUND = 1e-4
# The demo vocabulary (BERT uncased, 30522 tokens), so the tokenizers meet real WordPiece splits.
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
             max_position_embeddings=64, max_seq_length=32)
TEXTS = ["Zoë's café serves crème brûlée, naïvely priced at $3.50!",
         "ELECTRA (Clark et al., 2020) replaces tokens -- doesn't it?",
         "Qwzxv flibbertigibbet Übermut jalapeño Ångström 🦜... [sic]",
         "Tab\tand\nnewline; 東京 and 北京 are CJK; ¿Qué tal? «quotes» — dash"]


def _ids(vocab, batch=3, length=24, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (batch, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 15:] = 0  # Padding: the attention masks must agree too.
    ids *= mask
    segments = (np.arange(length)[None] >= 10).astype(np.int32).repeat(batch, 0) * mask
    return ids, mask, segments


def _encoder(config, activation=None, arrays=None):
    """electra_tf's discriminator encoder; `arrays` from another model, else random with shifted LayerNorms."""
    keras.utils.set_random_seed(0)
    embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
    encoder = modeling.ElectraEncoder(
        embeddings, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
        config.intermediate_size, config.dropout_prob, config.layer_norm_eps, config.initializer_range,
        activation or config.hidden_act, name="discriminator")
    ids, mask, segments = _ids(config.vocab_size)
    encoder(ids, segments, mask)
    names = interop.encoder_names(encoder, "electra")
    if arrays is not None:
        interop.assign(names, arrays)
    else:  # Non-trivial LayerNorms and biases, so a mix-up cannot hide.
        rng = np.random.default_rng(1)
        for name, v in names.items():
            if "LayerNorm" in name or name.endswith("bias"):
                v.assign(v.numpy() + rng.normal(0, 0.1, v.shape).astype("float32"))
    return encoder, names


def _backbone_output(backbone, ids, mask, segments):
    return backbone({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})


@pytest.mark.parametrize("embedding_size", [64, 32])
def test_preset_loads_in_keras_hub_with_the_discriminators_outputs_and_reads_back(
        embedding_size, tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", dict(SMALL, embedding_size=embedding_size))
    encoder, names = _encoder(config)
    preset = str(tmp_path / "preset")
    interop.write_keras_hub(names, config, vocab_file, preset)

    backbone = keras_hub.models.ElectraBackbone.from_preset(preset)
    assert isinstance(keras_hub.models.Backbone.from_preset(preset), keras_hub.models.ElectraBackbone)
    assert (encoder.embeddings_project is not None) == (embedding_size != 64)
    ids, mask, segments = _ids(config.vocab_size, seed=3)
    outputs = _backbone_output(backbone, ids, mask, segments)
    theirs = outputs["sequence_output"].numpy()
    # With keras-hub's activation our encoder gives the very same numbers: every weight sits where it should.
    same_activation, _ = _encoder(config, gelu_approximate, interop.model_arrays(names))
    np.testing.assert_array_equal(same_activation(ids, segments, mask).numpy(), theirs)
    # With ELECTRA's exact GELU they differ only by the approximation.
    gap = np.abs(encoder(ids, segments, mask).numpy() - theirs)[mask.astype(bool)].max()
    assert 0 < gap <= GELU_BOUND
    # ELECTRA has no pooler: the preset's is zeros.
    np.testing.assert_array_equal(outputs["pooled_output"].numpy(), 0)
    # The bound catches a weight in the wrong place: the two LayerNorms of a layer swapped.
    layer = backbone.get_layer("transformer_layer_0")
    beta = layer._self_attention_layer_norm.beta.numpy()
    layer._self_attention_layer_norm.beta.assign(layer._feedforward_layer_norm.beta)
    layer._feedforward_layer_norm.beta.assign(beta)
    wrong = _backbone_output(backbone, ids, mask, segments)["sequence_output"].numpy()
    assert np.abs(wrong - theirs)[mask.astype(bool)].max() > 100 * GELU_BOUND

    assert interop.detect_format(preset) == "keras_hub"
    read = interop.read_checkpoint(preset, "keras_hub")
    original = interop.model_arrays(names)
    assert read.keys() == original.keys()
    for name in original:
        np.testing.assert_array_equal(read[name], original[name], err_msg=name)
    shapes = interop.architecture_of(preset)
    assert {k: getattr(config, k) for k in shapes} == shapes
    assert {"embedding_size", "hidden_size", "num_hidden_layers", "do_lower_case"} <= set(shapes)


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_preset_tokenizer_tokenizes_like_ours(do_lower_case, tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", dict(SMALL, num_hidden_layers=1, do_lower_case=do_lower_case))
    _, names = _encoder(config)
    preset = str(tmp_path / "preset")
    interop.write_keras_hub(names, config, vocab_file, preset)
    assert interop.vocab_file_of(preset).endswith("assets/tokenizer/vocabulary.txt")
    assert tokenization.load_vocab(interop.vocab_file_of(preset)) == tokenization.load_vocab(vocab_file)

    keras_hub_tokenizer = keras_hub.models.ElectraTokenizer.from_preset(preset)
    ours = tokenization.WordPieceTokenizer(vocab_file, lower_case=do_lower_case)

    def tokenize(tokenizer, texts):
        ids = tokenizer(tf.constant(texts))
        return [list(map(int, row)) for row in (ids.to_list() if hasattr(ids, "to_list") else ids)]

    assert tokenize(keras_hub_tokenizer, TEXTS) == tokenize(ours, TEXTS)
    # Where they part: keras-hub lower-cases by Unicode case folding ('ß' -> 'ss'), BERT by str.lower().
    assert (tokenize(keras_hub_tokenizer, ["Straße"]) == tokenize(ours, ["strasse"])) == do_lower_case
    assert ours.unk_id in tokenize(ours, TEXTS)[2]  # Words out of the vocabulary are met too.
    assert interop.architecture_of(preset)["do_lower_case"] == do_lower_case


def test_finetuning_and_pretraining_start_from_a_preset(tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", SMALL)
    _, names = _encoder(config)
    preset = str(tmp_path / "preset")
    interop.write_keras_hub(names, config, vocab_file, preset)
    original = interop.model_arrays(names)

    classifier = finetuning.ElectraClassifier(config, 2, "toy")
    classifier.build_variables()
    assert finetuning.load_pretrained(classifier, preset) == "keras_hub"
    loaded = interop.model_arrays(interop.encoder_names(classifier.encoder, "electra"))
    assert all(np.array_equal(loaded[n], original[n]) for n in original)

    from conftest import make_pretrainer

    pretrainer = make_pretrainer(config)
    with pytest.raises(ValueError, match=r"missing \['discriminator_predictions/"):
        interop.initialize_from(pretrainer, preset)  # A backbone has no head nor generator.
    assert interop.initialize_from(pretrainer, preset, encoder_only=True) == "keras_hub"
    loaded = interop.model_arrays(interop.encoder_names(pretrainer.discriminator, "electra"))
    assert all(np.array_equal(loaded[n], original[n]) for n in original)


def test_unwritable_configs_and_foreign_presets_are_errors(tmp_path, vocab_file):
    config = ElectraConfig.from_size("tiny", SMALL)
    with pytest.raises(ValueError, match=r"hidden_act='relu', but keras-hub's ElectraBackbone has "
                                         r"hidden_act='gelu' built in"):
        interop.write_keras_hub({}, config.replace(hidden_act="relu"), vocab_file, str(tmp_path / "relu"))
    with pytest.raises(ValueError, match=r"has 30522 tokens but vocab_size is 1000"):
        interop.write_keras_hub({}, config.replace(vocab_size=1000), vocab_file, str(tmp_path / "small_vocab"))
    bert = tmp_path / "bert"
    keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                                  max_sequence_length=16).save_to_preset(str(bert))
    with pytest.raises(ValueError, match=r"bert/config.json: a keras-hub 'BertBackbone'; electra_tf reads "
                                         r"ElectraBackbone presets"):
        interop.read_checkpoint(str(bert), interop.detect_format(str(bert)))


def test_convert_cli_native_to_keras_hub_and_back_keeps_every_weight(tmp_path, vocab_file):
    from conftest import make_pretrainer, script_errors

    config = ElectraConfig.from_size("tiny", dict(SMALL, embedding_size=32, do_lower_case=False))
    pretrainer = make_pretrainer(config)
    native, preset, back = (str(tmp_path / d) for d in ("native", "preset", "back"))
    interop.write_native(native, config, vocab_file, interop.variable_names(pretrainer))
    assert script_errors("convert_checkpoint.py", [
        [f"--input={native}", "--input_format=native", "--output_format=keras_hub", f"--output_dir={preset}"],
        [f"--input={preset}", "--input_format=keras_hub", f"--output_dir={back}"]]) == ["", ""]
    assert isinstance(keras_hub.models.Backbone.from_preset(preset), keras_hub.models.ElectraBackbone)
    assert keras_hub.models.ElectraTokenizer.from_preset(preset).lowercase is False

    original = interop.model_arrays(interop.encoder_names(pretrainer.discriminator, "electra"))
    returned = interop.read_checkpoint(back, "native")
    assert returned.keys() == original.keys()  # The preset holds the encoder only.
    for name in original:
        np.testing.assert_array_equal(returned[name], original[name], err_msg=name)
    with open(f"{back}/config.json") as f:
        back_config = json.load(f)
    assert {k: back_config[k] for k in interop.ARCHITECTURE_FIELDS if not k.startswith("generator")} == {
        k: getattr(config, k) for k in interop.ARCHITECTURE_FIELDS if not k.startswith("generator")}
    assert open(f"{back}/vocab.txt").read() == open(vocab_file).read()
