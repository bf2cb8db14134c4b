import json
import os

import pytest

from electra_tf import config as config_lib
from electra_tf import paths
from electra_tf.config import ElectraConfig, available_sizes, parse_hparams


def test_all_sizes_load_with_paper_values():
    assert set(available_sizes()) >= {"tiny", "small", "base", "large"}
    small, base, large = (ElectraConfig.from_size(s) for s in ("small", "base", "large"))
    assert (small.hidden_size, small.embedding_size, small.num_hidden_layers) == (256, 128, 12)
    assert (small.generator_hidden, small.generator_heads, small.learning_rate) == (64, 1, 5e-4)
    assert (base.hidden_size, base.generator_hidden, base.generator_heads, base.train_batch_size) == (768, 256, 4, 256)
    assert (large.hidden_size, large.generator_hidden, large.mask_prob, large.num_hidden_layers) == (1024, 256, 0.25, 24)
    for c in (small, base, large):
        assert c.disc_weight == 50.0 and c.gen_weight == 1.0 and c.temperature == 1.0
        assert c.weight_decay_rate == 0.01 and c.num_warmup_steps == 10000
        assert not c.adam_bias_correction  # The authors' optimizer trained the released checkpoints.
        assert c.intermediate_size == 4 * c.hidden_size
        assert c.num_attention_heads == c.hidden_size // 64


def test_size_files_say_why_they_depart_and_the_reasons_are_not_applied(tmp_path, monkeypatch):
    tiny = json.load(open(os.path.join(paths.config_dir(), "tiny.json")))
    assert {"learning_rate", "disc_output_bias"} <= set(tiny["_why"])
    assert ElectraConfig.from_size("tiny").learning_rate == tiny["learning_rate"]
    (tmp_path / "odd.json").write_text(json.dumps({**tiny, "_why": {"no_such_field": "a reason"}}))
    monkeypatch.setattr(paths, "config_dir", lambda: str(tmp_path))
    with pytest.raises(ValueError, match=r"odd.json: _why gives reasons for unknown key\(s\) \['no_such_field'\]"):
        ElectraConfig.from_size("odd")


def test_max_predictions_follows_the_authors_rule():
    assert ElectraConfig.from_size("small").max_predictions_per_seq == 19
    assert ElectraConfig.from_size("base").max_predictions_per_seq == int(0.155 * 512)
    assert ElectraConfig.from_size("large").max_predictions_per_seq == int(0.255 * 512)


def test_overrides_from_hparams_string_and_file(tmp_path):
    assert parse_hparams('{"train_batch_size": 8}') == {"train_batch_size": 8}
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"learning_rate": 1e-3, "generator_hidden_size": 1.0}))
    c = ElectraConfig.from_size("small", parse_hparams(str(path)))
    assert c.learning_rate == 1e-3 and c.generator_hidden == 256
    assert c.replace(num_train_steps=5).num_train_steps == 5


@pytest.mark.parametrize("overrides, message", [
    ({"no_such_key": 1}, "unknown config key"),
    ({"num_train_steps": 0}, "num_train_steps must be positive"),
    ({"train_batch_size": -4}, "train_batch_size must be positive"),
    ({"objective": "gan"}, "objective must be one of"),
    ({"learning_rate": "fast"}, "learning_rate must be float"),
    ({"max_seq_length": 1024}, "exceeds max_position_embeddings"),
    ({"gradient_accumulation_steps": 3}, "train_batch_size 32 is not divisible by gradient_accumulation_steps 3"),
    ({"finetuning": {"learning_rate": 1e-4, "lr": 1}}, r"unknown key\(s\) \['lr'\] in finetuning"),
    ({"layerwise_lr_decay": 0.0}, r"layerwise_lr_decay must be in \(0, 1\]"),
    ({"warmup_proportion": 1.0}, r"warmup_proportion in \[0, 1\)"),
    ({"num_train_epochs": 0}, "num_train_epochs must be positive"),
])
def test_bad_overrides_name_the_culprit(overrides, message):
    with pytest.raises(ValueError, match=message):
        ElectraConfig.from_size("tiny", overrides)


def test_unknown_size_and_bad_hparams(tmp_path):
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        ElectraConfig.from_size("huge")
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_hparams("{not json")
    with pytest.raises(ValueError, match="neither a JSON object nor an existing file"):
        parse_hparams(str(tmp_path / "missing.json"))


def test_a_saved_config_from_before_the_newer_fields_still_loads(tmp_path):
    values = ElectraConfig.from_size("tiny").to_dict()
    for name in config_lib.SAVED_CONFIG_DEFAULTS:
        del values[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    config = ElectraConfig.from_json_file(str(path))
    assert {n: getattr(config, n) for n in config_lib.SAVED_CONFIG_DEFAULTS} == config_lib.SAVED_CONFIG_DEFAULTS
    assert config == ElectraConfig.from_size("tiny")
    # Only saved configs: a size file or a dict must still name every field.
    with pytest.raises(ValueError, match="missing config key"):
        ElectraConfig.from_dict(values)
