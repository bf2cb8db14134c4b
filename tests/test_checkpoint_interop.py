"""Hugging Face and authors' TF1 checkpoints load into electra_tf and come back out, with equal outputs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from electra_tf import checkpoint_interop as interop  # noqa: E402
from electra_tf import modeling  # noqa: E402
from electra_tf import pretraining_data  # noqa: E402
from electra_tf.config import ElectraConfig  # noqa: E402

SMALL = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
             max_position_embeddings=64, type_vocab_size=2)


def _ids(vocab, batch=3, length=24, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (batch, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 15:] = 0  # Padding: the attention masks must agree too.
    ids *= mask
    segments = (np.arange(length)[None] >= 10).astype(np.int32).repeat(batch, 0) * mask
    return ids, mask, segments


def _hf_discriminator(embedding_size):
    torch.manual_seed(0)
    config = transformers.ElectraConfig(embedding_size=embedding_size, **SMALL)
    model = transformers.ElectraForPreTraining(config).eval()
    with torch.no_grad():  # Non-trivial LayerNorms and biases, so a mix-up cannot hide.
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _hf_logits(model, ids, mask, segments):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(segments, dtype=torch.long))
    return out.logits.numpy()


def _our_discriminator(model_dir_or_arrays, config):
    embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
    encoder = modeling.ElectraEncoder.discriminator(config, embeddings, name="discriminator")
    head = modeling.DiscriminatorHead(config.hidden_size, config.hidden_act, name="discriminator_predictions")
    ids, mask, segments = _ids(config.vocab_size)
    head(encoder(ids, segments, mask))  # Builds every variable.
    names = {**interop.encoder_names(encoder, "electra"), **interop.head_names(head, "discriminator_predictions")}
    interop.assign(names, model_dir_or_arrays)
    return encoder, head, names


def _write_tf1_checkpoint(prefix, arrays):
    """A name-based checkpoint as the authors' TF1 code writes it."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[n]) for n in names])


def _config_for(hf_dir):
    return ElectraConfig.from_size("small", dict(interop.config_overrides_from_hf(hf_dir), max_seq_length=24))


@pytest.mark.parametrize("embedding_size", [64, 32])
def test_hf_discriminator_imports_with_equal_logits_and_exports_back(embedding_size, tmp_path):
    hf = _hf_discriminator(embedding_size)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    config = _config_for(tmp_path / "hf")
    encoder, head, names = _our_discriminator(interop.read_checkpoint(str(tmp_path / "hf"), "hf"), config)
    assert (encoder.embeddings_project is not None) == (embedding_size != 64)

    ids, mask, segments = _ids(config.vocab_size)
    ours = head(encoder(ids, segments, mask)).numpy()
    expected = _hf_logits(hf, ids, mask, segments)
    real = mask.astype(bool)
    assert np.abs(ours - expected)[real].max() <= 1e-4

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"tok{i}\n" for i in range(config.vocab_size)))
    interop.write_hf(names, config, str(vocab), str(tmp_path / "back"))
    reloaded = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "back").eval()
    assert np.abs(_hf_logits(reloaded, ids, mask, segments) - expected)[real].max() <= 1e-4


def test_authors_tf1_checkpoint_imports_discriminator_and_skips_only_optimizer_state(tmp_path):
    hf = _hf_discriminator(32)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    arrays = interop.read_checkpoint(str(tmp_path / "hf"), "hf")
    # A name-based checkpoint as the authors' TF1 code writes it, Adam slots and step included.
    tensors = {**arrays, **{f"{n}/adam_m": np.zeros_like(v) for n, v in arrays.items()},
               "global_step": np.array(1000, np.int64)}
    prefix = str(tmp_path / "authors" / "model.ckpt-1000")
    _write_tf1_checkpoint(prefix, tensors)
    imported = interop.read_checkpoint(prefix, "authors_tf1")
    assert set(imported) == set(arrays)
    assert interop.architecture_of(prefix) == {}  # No config beside it: --model_size says the shapes.
    config = _config_for(tmp_path / "hf")
    encoder, head, _ = _our_discriminator(imported, config)
    ids, mask, segments = _ids(config.vocab_size, seed=1)
    diff = head(encoder(ids, segments, mask)).numpy() - _hf_logits(hf, ids, mask, segments)
    assert np.abs(diff)[mask.astype(bool)].max() <= 1e-4


def test_mismatches_are_errors_that_name_the_variable(tmp_path):
    hf = _hf_discriminator(64)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    arrays = interop.read_checkpoint(str(tmp_path / "hf"), "hf")
    config = _config_for(tmp_path / "hf")
    missing = dict(arrays)
    del missing["electra/encoder/layer_1/output/dense/bias"]
    with pytest.raises(ValueError, match="missing.*layer_1/output/dense/bias"):
        _our_discriminator(missing, config)
    extra = dict(arrays, **{"electra/encoder/layer_7/output/dense/bias": np.zeros(64, np.float32)})
    with pytest.raises(ValueError, match="unused.*layer_7/output/dense/bias"):
        _our_discriminator(extra, config)
    wrong = dict(arrays, **{"electra/embeddings/token_type_embeddings": np.zeros((3, 64), np.float32)})
    with pytest.raises(ValueError, match="token_type_embeddings: checkpoint shape"):
        _our_discriminator(wrong, config)


def test_real_pretrained_bert_weights_reproduce_hf_hidden_states():
    bert_dir = os.path.dirname(pretraining_data.demo_vocab_file())  # MiniLM-L6-H384, BERT layout.
    config = ElectraConfig.from_size("small", dict(interop.config_overrides_from_hf(bert_dir), max_seq_length=24))
    embeddings = modeling.ElectraEmbeddings.from_electra_config(config, name="embeddings")
    encoder = modeling.ElectraEncoder.discriminator(config, embeddings, name="encoder")
    ids, mask, segments = _ids(config.vocab_size, seed=2)
    encoder(ids, segments, mask)
    interop.assign(interop.encoder_names(encoder, "electra"), interop.read_checkpoint(bert_dir, "hf"))
    bert = transformers.BertModel.from_pretrained(bert_dir, add_pooling_layer=False).eval()
    with torch.no_grad():
        expected = bert(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(segments, dtype=torch.long)).last_hidden_state.numpy()
    ours = encoder(ids, segments, mask).numpy()
    assert np.abs(ours - expected)[mask.astype(bool)].max() <= 1e-4


def test_convert_cli_hf_to_native_to_hf_keeps_the_logits(tmp_path):
    from conftest import run_script

    hf = _hf_discriminator(32)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (tmp_path / "hf" / "vocab.txt").write_text("".join(f"{t}\n" for t in specials + [
        f"tok{i}" for i in range(len(specials), SMALL["vocab_size"])]))
    native, back = tmp_path / "native", tmp_path / "back"
    first = run_script("convert_checkpoint.py", f"--input={tmp_path / 'hf'}", "--input_format=hf",
                       f"--output_dir={native}")
    assert first.returncode == 0, first.stderr[-2000:]
    assert {n.split("/")[0] for n in interop.read_checkpoint(str(native), "native")} == {
        "electra", "discriminator_predictions"}
    assert interop.detect_format(str(native)) == "native" and interop.detect_format(str(tmp_path / "hf")) == "hf"
    # Either dir says the shapes a fine-tuning or pre-training run started from it must build.
    for path in (native, tmp_path / "hf"):
        shapes = interop.architecture_of(str(path))
        assert shapes["vocab_size"] == SMALL["vocab_size"] and shapes["hidden_size"] == SMALL["hidden_size"]
        assert "dropout_prob" not in shapes and "learning_rate" not in shapes
    second = run_script("convert_checkpoint.py", f"--input={native}", "--input_format=native",
                        "--output_format=hf", f"--output_dir={back}")
    assert second.returncode == 0, second.stderr[-2000:]
    reloaded = transformers.ElectraForPreTraining.from_pretrained(back).eval()
    ids, mask, segments = _ids(SMALL["vocab_size"], seed=3)
    diff = _hf_logits(reloaded, ids, mask, segments) - _hf_logits(hf, ids, mask, segments)
    assert np.abs(diff)[mask.astype(bool)].max() <= 1e-4

    # The converted dir is what export_model.py takes: served for TF Serving, it answers as HF's model.
    from electra_tf import export
    served = tf.saved_model.load(export.export_model(str(native), str(tmp_path / "serving"), "discriminator"))
    answer = served.signatures["encoded"](input_ids=tf.constant(ids), input_mask=tf.constant(mask),
                                          segment_ids=tf.constant(segments))["replaced_probability"].numpy()
    expected = 1 / (1 + np.exp(-_hf_logits(hf, ids, mask, segments)))
    assert np.abs(answer - expected)[mask.astype(bool)].max() <= 1e-5


def test_authors_checkpoint_with_generator_initialises_a_pretrainer_exactly(tmp_path):
    from conftest import make_pretrainer

    config = ElectraConfig.from_size("tiny", {"num_hidden_layers": 1, "max_seq_length": 32, "seed": 7})
    source = make_pretrainer(config)
    arrays = interop.model_arrays(interop.variable_names(source))
    assert any(n.startswith("generator/encoder/layer_0/") for n in arrays)
    prefix = str(tmp_path / "model.ckpt-5")
    _write_tf1_checkpoint(prefix, arrays)
    target = make_pretrainer(config.replace(seed=8))
    assert interop.initialize_from(target, prefix) == "authors_tf1"
    for a, b in zip(source.trainable_variables, target.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The shared embedding block is one set of variables under the authors' names too.
    assert "generator/embeddings/word_embeddings" not in arrays and "electra/embeddings/word_embeddings" in arrays


def test_released_encoder_without_generator_initialises_only_the_encoder_for_continued_pretraining():
    from conftest import make_pretrainer

    bert_dir = os.path.dirname(pretraining_data.demo_vocab_file())  # MiniLM-L6-H384: an encoder, no generator.
    config = ElectraConfig.from_size("tiny", dict(interop.architecture_of(bert_dir), max_seq_length=32))
    target = make_pretrainer(config)
    fresh = interop.model_arrays(interop.variable_names(target))
    with pytest.raises(ValueError, match=r"missing \['discriminator_predictions/dense/bias'"):
        interop.initialize_from(target, bert_dir)
    assert interop.initialize_from(target, bert_dir, encoder_only=True) == "hf"
    released = interop.read_checkpoint(bert_dir, "hf")
    names = interop.variable_names(target)
    now = interop.model_arrays(names)  # The authors' layout, which read_checkpoint gives.
    loaded = [n for n in names if n.startswith("electra/")]
    assert len(loaded) == len(released) and all(np.array_equal(now[n], released[n]) for n in loaded)
    kept = [n for n in names if not n.startswith("electra/")]
    assert any(n.startswith("generator/encoder/") for n in kept)
    assert all(np.array_equal(now[n], fresh[n]) for n in kept)


def test_generator_exports_to_hf_masked_lm_with_equal_logits(tmp_path):
    from conftest import make_pretrainer

    # tiny: embedding 128 and a 32-wide generator, so embeddings_project is exercised.
    config = ElectraConfig.from_size("tiny", {"num_hidden_layers": 2, "max_seq_length": 32})
    pretrainer = make_pretrainer(config)
    names = interop.variable_names(pretrainer)
    generator = {n: v for n, v in names.items() if n.startswith(("generator", "electra/embeddings/"))}
    interop.write_hf(generator, config, pretraining_data.demo_vocab_file(), str(tmp_path / "gen"), generator=True)
    hf = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "gen").eval()

    ids, mask, segments = _ids(config.vocab_size, length=32, seed=4)
    positions = np.tile(np.arange(1, 9, dtype=np.int32), (3, 1))
    hidden = pretrainer.generator(ids, segments, mask)
    ours = pretrainer.generator_head(hidden, mask_positions=positions).numpy()
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(segments, dtype=torch.long)).logits.numpy()
    expected = np.take_along_axis(logits, positions[..., None], axis=1)
    assert np.abs(ours - expected).max() <= 1e-4


def test_hf_discriminator_and_generator_pair_converts_into_one_pretrainer(tmp_path):
    import json

    from conftest import make_pretrainer, run_script

    disc = _hf_discriminator(32)
    torch.manual_seed(1)
    gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
        **dict(SMALL, hidden_size=64, num_attention_heads=1, intermediate_size=256, num_hidden_layers=1),
        embedding_size=32)).eval()
    gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())  # Tied, as trained.
    disc.save_pretrained(tmp_path / "disc", safe_serialization=True)
    gen.save_pretrained(tmp_path / "gen", safe_serialization=True)
    native = tmp_path / "native"
    result = run_script("convert_checkpoint.py", f"--input={tmp_path / 'disc'}", "--input_format=hf",
                        f"--generator_input={tmp_path / 'gen'}", f"--output_dir={native}")
    assert result.returncode == 0, result.stderr[-2000:]

    with open(native / "config.json") as f:
        config = ElectraConfig.from_dict(json.load(f))
    assert config.generator_hidden == 64 and config.generator_num_layers == 1
    pretrainer = make_pretrainer(config)
    assert interop.initialize_from(pretrainer, str(native)) == "native"
    ids, mask, segments = _ids(config.vocab_size, seed=5)
    disc_logits = pretrainer.discriminator_head(pretrainer.discriminator(ids, segments, mask)).numpy()
    assert np.abs(disc_logits - _hf_logits(disc, ids, mask, segments))[mask.astype(bool)].max() <= 1e-4
    positions = np.tile(np.arange(1, 6, dtype=np.int32), (3, 1))
    ours = pretrainer.generator_head(pretrainer.generator(ids, segments, mask), mask_positions=positions).numpy()
    with torch.no_grad():
        logits = gen(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                     token_type_ids=torch.tensor(segments, dtype=torch.long)).logits.numpy()
    assert np.abs(ours - np.take_along_axis(logits, positions[..., None], axis=1)).max() <= 1e-4

    with torch.no_grad():  # A generator from another run: its embeddings differ.
        gen.electra.embeddings.word_embeddings.weight.add_(0.1)
    gen.save_pretrained(tmp_path / "other", safe_serialization=True)
    mismatch = run_script("convert_checkpoint.py", f"--input={tmp_path / 'disc'}", "--input_format=hf",
                          f"--generator_input={tmp_path / 'other'}", f"--output_dir={tmp_path / 'x'}")
    assert mismatch.returncode != 0 and "word_embeddings differs between" in mismatch.stderr


def test_unreadable_sources_get_errors_that_name_them(tmp_path):
    import json

    from conftest import run_script

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty}: neither an electra_tf model dir"):
        interop.detect_format(str(empty))
    (empty / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=f"{empty}: no model.safetensors or pytorch_model.bin"):
        interop.read_checkpoint(str(empty), "hf")
    with pytest.raises(ValueError, match="--input_format='onnx'"):
        interop.read_checkpoint(str(empty), "onnx")
    foreign = str(tmp_path / "foreign" / "ckpt")
    tf.train.Checkpoint(v=tf.Variable(1.0)).save(foreign)
    with pytest.raises(ValueError, match="no electra_tf weights in this checkpoint"):
        interop.read_checkpoint(str(tmp_path / "foreign"), "native")

    generator = tmp_path / "gen"
    generator.mkdir()
    (generator / "config.json").write_text(json.dumps(
        {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match="generator with 4 heads and FFN 256; ELECTRA generators have "
                                         "hidden // 64 = 1 heads"):
        interop.generator_overrides_from_hf(str(generator), {"hidden_size": 64, "num_hidden_layers": 2})

    wrong = run_script("convert_checkpoint.py", f"--input={empty}", "--input_format=native",
                       f"--generator_input={generator}", f"--output_dir={tmp_path / 'out'}")
    assert wrong.returncode != 0 and "--generator_input goes with --input_format=hf" in wrong.stderr


# transformers 5 dropped `load_tf_weights_in_electra`; scripts/setup.sh installs transformers 4.57 here,
# apart from the venv's transformers 5, for this comparison only.
HF4 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "hf4")

_HF_TF_LOADER = """
import json, sys
import numpy as np
import torch
import transformers
from transformers.models.electra.modeling_electra import load_tf_weights_in_electra
assert transformers.__version__.startswith("4."), transformers.__version__
prefix, disc_dir, gen_dir, out = sys.argv[1:5]
ids, mask, segments = (torch.tensor(np.load(out + ".in.npz")[k], dtype=torch.long) for k in ("ids", "mask", "segments"))
results = {}
for part, cls, model_dir in (("discriminator", transformers.ElectraForPreTraining, disc_dir),
                             ("generator", transformers.ElectraForMaskedLM, gen_dir)):
    config = transformers.ElectraConfig.from_json_file(model_dir + "/config.json")
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))  # HF's loader skips what it cannot place: anything left NaN was not loaded.
    load_tf_weights_in_electra(model, config, prefix, discriminator_or_generator=part)
    unloaded = [n for n, p in model.named_parameters() if torch.isnan(p).any()]
    assert not unloaded, unloaded
    with torch.no_grad():
        results[part] = model(input_ids=ids, attention_mask=mask, token_type_ids=segments).logits.numpy()
np.savez(out, **results)
"""


@pytest.mark.skipif(not os.path.isdir(HF4), reason="transformers 4.57 not in .venv/hf4: run scripts/setup.sh")
def test_authors_tf1_checkpoint_imports_as_hugging_faces_own_tf_loader_reads_it(tmp_path):
    from conftest import make_pretrainer

    # Embedding 64 != hidden 96 and a 48-wide generator: both embeddings_project layers are exercised.
    config = ElectraConfig.from_size("small", dict(SMALL, hidden_size=96, num_attention_heads=3, embedding_size=64,
                                                   intermediate_size=192, generator_hidden_size=0.5,
                                                   max_seq_length=24))
    source = make_pretrainer(config)
    rng = np.random.default_rng(0)
    for v in source.weights:  # Non-trivial LayerNorms and biases, so a mix-up cannot hide.
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype(np.float32))
    arrays = interop.model_arrays(interop.variable_names(source))
    arrays.update({f"{n}/adam_m": np.zeros_like(v) for n, v in list(arrays.items())[:3]},
                  global_step=np.array(7, np.int64))
    prefix = str(tmp_path / "model.ckpt-7")
    _write_tf1_checkpoint(prefix, arrays)

    ours = make_pretrainer(config.replace(seed=3))
    assert interop.initialize_from(ours, prefix) == "authors_tf1"
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"tok{i}\n" for i in range(config.vocab_size)))
    names = interop.variable_names(ours)  # HF configs for the two parts (their weights are not used here).
    interop.write_hf({n: v for n, v in names.items() if not n.startswith("generator")}, config, str(vocab),
                     str(tmp_path / "disc"))
    interop.write_hf({n: v for n, v in names.items() if n.startswith(("generator", "electra/embeddings/"))},
                     config, str(vocab), str(tmp_path / "gen"), generator=True)

    ids, mask, segments = _ids(config.vocab_size, seed=5)
    out = str(tmp_path / "hf_tf_loader.npz")
    np.savez(out + ".in.npz", ids=ids, mask=mask, segments=segments)
    env = dict(os.environ, PYTHONPATH=HF4, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", _HF_TF_LOADER, prefix, str(tmp_path / "disc"), str(tmp_path / "gen"), out],
                   check=True, env=env, timeout=600)
    hf = np.load(out)
    real = mask.astype(bool)
    disc = ours.discriminator_head(ours.discriminator(ids, segments, mask)).numpy()
    assert np.abs(disc - hf["discriminator"])[real].max() <= 1e-4
    positions = np.tile(np.arange(ids.shape[1], dtype=np.int32), (ids.shape[0], 1))
    gen = ours.generator_head(ours.generator(ids, segments, mask), mask_positions=positions).numpy()
    assert np.abs(gen - hf["generator"])[real].max() <= 1e-4
