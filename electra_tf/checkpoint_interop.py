"""Loading and writing the released checkpoint formats: the authors' TF1 names, Hugging Face and keras-hub.

Every format goes through one canonical form: a dict from the authors' TF1
variable names (`electra/encoder/layer_0/attention/self/query/kernel`, ...)
to numpy arrays in the authors' layout (dense kernels [in, out]). Hugging Face
names are translated to and from those names; a model's variables are matched
to them by `variable_names`. Nothing is skipped silently: a name the model
needs and the source lacks, a name the source has and the model does not
use, and a shape that does not fit are errors naming the variable.

Example:
```python
arrays = read_checkpoint("electra_small/model.ckpt-1000000", "authors_tf1")
assign(variable_names(pretrainer), arrays)
```
"""

import json
import os
import re
import shutil

from absl import logging
import numpy as np
import tensorflow as tf

from electra_tf import hf_heads

FORMATS = ("authors_tf1", "hf", "native", "keras_hub")

# The authors' names of one transformer layer's parts, keyed by the keras-hub
# TransformerEncoder's variable names.
_LAYER_NAMES = {
    "self_attention_layer/query/kernel": "attention/self/query/kernel",
    "self_attention_layer/query/bias": "attention/self/query/bias",
    "self_attention_layer/key/kernel": "attention/self/key/kernel",
    "self_attention_layer/key/bias": "attention/self/key/bias",
    "self_attention_layer/value/kernel": "attention/self/value/kernel",
    "self_attention_layer/value/bias": "attention/self/value/bias",
    "self_attention_layer/attention_output/kernel": "attention/output/dense/kernel",
    "self_attention_layer/attention_output/bias": "attention/output/dense/bias",
    "self_attention_layer_norm/gamma": "attention/output/LayerNorm/gamma",
    "self_attention_layer_norm/beta": "attention/output/LayerNorm/beta",
    "feedforward_intermediate_dense/kernel": "intermediate/dense/kernel",
    "feedforward_intermediate_dense/bias": "intermediate/dense/bias",
    "feedforward_output_dense/kernel": "output/dense/kernel",
    "feedforward_output_dense/bias": "output/dense/bias",
    "feedforward_layer_norm/gamma": "output/LayerNorm/gamma",
    "feedforward_layer_norm/beta": "output/LayerNorm/beta",
}
_EMBEDDING_NAMES = {
    "word_embeddings/embeddings": "word_embeddings",
    "position_embeddings/embeddings": "position_embeddings",
    "token_type_embeddings/embeddings": "token_type_embeddings",
    "layer_norm/gamma": "LayerNorm/gamma",
    "layer_norm/beta": "LayerNorm/beta",
}
_HEAD_NAMES = {
    "intermediate_dense": "dense", "intermediate_layer_norm": "LayerNorm", "output_bias": "output_bias",
    "dense": "dense", "dense_1": "dense_1",
}
# What the released files hold besides the model: optimizer state, step
# counters, BERT's pooler (ELECTRA uses the [CLS] state), HF's buffers.
_NOT_MODEL = re.compile(r"(adam_[mv]|global_step|pooler|position_ids|/Adam)")


def _relative(variable, layer):
    return variable.path.split(f"/{layer.name}/", 1)[-1] if f"/{layer.name}/" in variable.path \
        else variable.path.split(f"{layer.name}/", 1)[-1]


def encoder_names(encoder, prefix, embeddings_prefix="electra"):
    """{authors' name: variable} for an `ElectraEncoder` under `prefix` (`electra` or `generator`).

    The embedding block is `electra/embeddings` when the generator shares it
    (the default), `generator/embeddings` for an untied generator's own (the
    authors' `untied_generator_embeddings` scope).
    """
    names = {f"{embeddings_prefix}/embeddings/{_EMBEDDING_NAMES[_relative(v, encoder.embeddings)]}": v
             for v in encoder.embeddings.weights}
    if encoder.embeddings_project is not None:
        for v in encoder.embeddings_project.weights:
            names[f"{prefix}/embeddings_project/{_relative(v, encoder.embeddings_project)}"] = v
    for i, layer in enumerate(encoder.transformer_layers):
        for v in layer.weights:
            names[f"{prefix}/encoder/layer_{i}/{_LAYER_NAMES[_relative(v, layer)]}"] = v
    return names


def head_names(head, prefix):
    """{authors' name: variable} of a `DiscriminatorHead` or the generator's `MaskedLMHead`."""
    own = [v for v in head.weights if "word_embeddings" not in v.path]  # The tied table is the encoder's.
    names = {}
    for v in own:
        layer, _, leaf = _relative(v, head).rpartition("/")
        names["/".join(filter(None, [prefix, _HEAD_NAMES[layer or leaf], leaf if layer else ""]))] = v
    return names


# Checkpoint name prefixes of an ELECTRA generator's parts (an untied one's embeddings, its masked-LM head,
# adversarial ELECTRA's baseline), which a discriminator or a fine-tuned model leaves out.
GENERATOR_PREFIXES = ("generator/", "generator_predictions/", "generator_baseline/")


def variable_names(pretrainer):
    """{authors' name: variable} of everything an `ElectraPretrainer` (or `electric.ElectricPretrainer`) holds.

    A generator sharing all weights is the discriminator (the authors'
    `untied_generator=False` reuses the `electra` scope), so it adds only its
    head; a weightless (uniform, unigram) generator adds nothing; Electric's
    two-tower generator adds its towers and cloze head under their own names.
    """
    names = encoder_names(pretrainer.discriminator, "electra")
    if pretrainer.discriminator_head is not None:
        names.update(head_names(pretrainer.discriminator_head, "discriminator_predictions"))
    cloze_generator = getattr(pretrainer, "cloze_generator", None)  # Electric's two towers name themselves.
    if cloze_generator is not None:
        names.update(cloze_generator.variable_names())
        return names
    generator = pretrainer.generator
    if generator is not None and generator is not pretrainer.discriminator:
        own = generator.embeddings is not pretrainer.embeddings
        names.update(encoder_names(generator, "generator", "generator" if own else "electra"))
    for prefix, head in (("generator_predictions", pretrainer.generator_head),
                         ("discriminator_mlm_predictions", pretrainer.discriminator_mlm_head),
                         ("copy_predictions", pretrainer.copy_head),
                         ("generator_baseline", pretrainer.baseline_head)):
        if head is not None:
            names.update(head_names(head, prefix))
    return names


def assign(names, arrays):
    """Copies `arrays` into the variables of `names`, checking both sides completely.

    Args:
      names: {authors' name: variable}.
      arrays: {authors' name: numpy array} from `read_checkpoint`.

    Raises:
      ValueError naming every missing or unused variable, or a shape mismatch.
    """
    missing = sorted(set(names) - set(arrays))
    unused = sorted(set(arrays) - set(names))
    if missing or unused:
        raise ValueError(f"checkpoint does not match the model: missing {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''} ({len(missing)}), unused {unused[:10]}"
                         f"{' ...' if len(unused) > 10 else ''} ({len(unused)})")
    for name, variable in names.items():
        value, expected = arrays[name], _authors_shape(name, tuple(variable.shape))
        if value.shape != expected:
            raise ValueError(f"{name}: checkpoint shape {value.shape} does not fit the model's {expected}")
        variable.assign(value.reshape(variable.shape).astype(variable.dtype))


def model_arrays(names):
    """The model's weights in the canonical form (authors' names and layout)."""
    return {name: np.asarray(v.numpy()).reshape(_authors_shape(name, tuple(v.shape))) for name, v in names.items()}


def _authors_shape(name, shape):
    """The authors' shape of a variable: keras-hub splits attention weights by head, they did not."""
    if name.endswith("/kernel") and len(shape) == 3:  # [in, heads, size] or, for the output, [heads, size, out].
        return (shape[0] * shape[1], shape[2]) if "/output/" in name else (shape[0], shape[1] * shape[2])
    if name.endswith("/bias") and len(shape) == 2:  # [heads, size].
        return (shape[0] * shape[1],)
    return shape


# --- Reading ---

def read_checkpoint(path, input_format):
    """Reads a checkpoint into the canonical {authors' name: array} form.

    Args:
      path: for `authors_tf1`, a TF1 checkpoint prefix (or its directory);
        for `hf`, a Hugging Face model directory (config.json and
        model.safetensors or pytorch_model.bin); for `native`, an electra_tf
        model dir (a converted model or a pre-training run); for `keras_hub`,
        a keras-hub `ElectraBackbone` preset directory.
      input_format: one of `FORMATS`.
    """
    if input_format == "authors_tf1":
        reader = tf.train.load_checkpoint(path)
        return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if not _NOT_MODEL.search(n)}
    if input_format == "native":
        return _read_native(path)
    if input_format == "keras_hub":
        return _read_keras_hub(path)
    if input_format == "hf":
        return {hf_to_authors(n): _from_torch_layout(n, v) for n, v in _read_hf_tensors(path).items()
                if not _NOT_MODEL.search(n) and not n.startswith("generator_lm_head.weight")}
    raise ValueError(f"--input_format={input_format!r}: choose one of {FORMATS}")


def _read_hf_tensors(model_dir):
    safetensors_file = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(safetensors_file):
        from safetensors.numpy import load_file  # No PyTorch needed.
        return load_file(safetensors_file)
    bin_file = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(bin_file):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"{bin_file} is a PyTorch pickle and needs torch; convert it to "
                              "model.safetensors or install torch") from e
        return {k: v.numpy() for k, v in torch.load(bin_file, map_location="cpu", weights_only=True).items()}
    raise FileNotFoundError(f"{model_dir}: no model.safetensors or pytorch_model.bin")


def hf_to_authors(name):
    """`electra.encoder.layer.3.attention.self.query.weight` -> `electra/encoder/layer_3/attention/self/query/kernel`.

    BERT checkpoints (`bert.` prefix or none) map onto the ELECTRA encoder;
    ElectraForMaskedLM's head maps onto the generator's.
    """
    name = re.sub(r"^bert\.", "electra.", name)
    if name.startswith(("embeddings.", "encoder.")):
        name = "electra." + name
    name = name.replace("generator_lm_head.bias", "generator_predictions.output_bias")
    name = name.replace("discriminator_predictions.dense_prediction", "discriminator_predictions.dense_1")
    name = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", name)
    parts = name.split(".")
    leaf = parts.pop()
    if parts[-1] == "LayerNorm":
        parts.append({"weight": "gamma", "bias": "beta"}[leaf])
    elif parts[-1].endswith("_embeddings"):
        pass  # Tables are stored under the table's own name.
    elif leaf != "output_bias":
        parts.append({"weight": "kernel", "bias": "bias"}[leaf])
    else:
        parts.append(leaf)
    return "/".join(parts)


def authors_to_hf(name, generator=False):
    """Inverse of `hf_to_authors` for ELECTRA names (`generator=True`: ElectraForMaskedLM layout)."""
    if generator:
        name = re.sub(r"^generator/", "electra/", name)
        name = name.replace("generator_predictions/output_bias", "generator_lm_head/bias")
    name = name.replace("discriminator_predictions/dense_1", "discriminator_predictions/dense_prediction")
    name = re.sub(r"layer_(\d+)", r"layer/\1", name)
    parts = name.split("/")
    leaf = parts[-1]
    if leaf in ("gamma", "beta"):
        parts[-1] = {"gamma": "weight", "beta": "bias"}[leaf]
    elif leaf == "kernel":
        parts[-1] = "weight"
    elif leaf.endswith("_embeddings"):
        parts.append("weight")
    return ".".join(parts)


def _from_torch_layout(name, value):
    # torch.nn.Linear stores [out, in]; the authors' kernels are [in, out].
    return value.T if name.endswith(".weight") and value.ndim == 2 and "_embeddings." not in name else value


# --- Writing ---

def write_hf(names, config, vocab_file, output_dir, generator=False, head=None):
    """Writes a Hugging Face ELECTRA model dir (config.json, model.safetensors, vocab.txt, tokenizer_config.json).

    Args:
      names: {authors' name: variable} of the discriminator (encoder and
        head) or, with `generator=True`, of the generator's encoder and head.
      config: the `ElectraConfig`.
      vocab_file: copied as vocab.txt.
      output_dir: created if needed.
      generator: write `ElectraForMaskedLM` instead of `ElectraForPreTraining`.
      head: a fine-tuned model's task head from `hf_heads.head_to_hf`: (arrays
        by Hugging Face's head names in the canonical layout, config.json fields).
    """
    from safetensors.numpy import save_file

    os.makedirs(output_dir, exist_ok=True)
    tensors = {}
    arrays = model_arrays(names)
    arrays.update(head[0] if head else {})
    for name, value in arrays.items():
        hf_name = authors_to_hf(name, generator)
        tensors[hf_name] = np.ascontiguousarray(value.T if hf_name.endswith(".weight") and value.ndim == 2
                                                and "_embeddings" not in hf_name else value)
    if generator:
        tensors["generator_lm_head.weight"] = tensors["electra.embeddings.word_embeddings.weight"]
    save_file(tensors, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
    hidden = config.generator_hidden if generator else config.hidden_size
    hf_config = {
        "architectures": ["ElectraForMaskedLM" if generator else "ElectraForPreTraining"
                          if any(n.startswith("discriminator_predictions/") for n in names) else "ElectraModel"],
        "model_type": "electra", "vocab_size": config.vocab_size, "embedding_size": config.embedding_size,
        "hidden_size": hidden,
        "num_hidden_layers": config.generator_num_layers if generator else config.num_hidden_layers,
        "num_attention_heads": config.generator_heads if generator else config.num_attention_heads,
        "intermediate_size": config.generator_intermediate if generator else config.intermediate_size,
        "hidden_act": config.hidden_act, "hidden_dropout_prob": config.dropout_prob,
        "attention_probs_dropout_prob": config.dropout_prob,
        "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": 0, "tie_word_embeddings": True,
        **(head[1] if head else {}),
    }
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
    # So that AutoTokenizer (and a pipeline) cases the text as the model was trained.
    with open(os.path.join(output_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "ElectraTokenizer", "do_lower_case": config.do_lower_case}, f, indent=2)
    shutil.copyfile(vocab_file, os.path.join(output_dir, "vocab.txt"))


def as_generator(arrays):
    """Renames an ElectraForMaskedLM's arrays to the generator's names (embeddings stay shared)."""
    renamed = {}
    for name, value in arrays.items():
        for own in ("electra/encoder/", "electra/embeddings_project/"):
            if name.startswith(own):
                name = "generator/" + name[len("electra/"):]
        renamed[name] = value
    return renamed


def merge_generator(arrays, generator_arrays, atol=1e-6):
    """Adds a separately stored generator to a discriminator's arrays.

    ELECTRA ties the two models' embedding blocks, so released pairs carry
    the same tables twice; tables that differ mean the pair does not belong
    together, which is an error naming the table.
    """
    merged = dict(arrays)
    for name, value in as_generator(generator_arrays).items():
        if name in merged:
            if merged[name].shape != value.shape or not np.allclose(merged[name], value, atol=atol):
                raise ValueError(f"{name} differs between the discriminator and the generator; ELECTRA ties "
                                 "their embeddings, so these two checkpoints were not trained together")
        else:
            merged[name] = value
    return merged


def generator_overrides_from_hf(model_dir, discriminator_overrides):
    """generator_hidden_size / generator_layers from an ElectraForMaskedLM config, checked against our rules."""
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    hidden, layers = discriminator_overrides["hidden_size"], discriminator_overrides["num_hidden_layers"]
    heads = max(1, hf["hidden_size"] // 64)
    if hf["num_attention_heads"] != heads or hf["intermediate_size"] != 4 * hf["hidden_size"]:
        raise ValueError(f"{model_dir}: generator with {hf['num_attention_heads']} heads and FFN "
                         f"{hf['intermediate_size']}; ELECTRA generators have hidden // 64 = {heads} heads "
                         f"and FFN 4 x hidden = {4 * hf['hidden_size']}")
    return {"generator_hidden_size": hf["hidden_size"] / hidden, "generator_layers": hf["num_hidden_layers"] / layers}


def config_overrides_from_hf(model_dir):
    """ElectraConfig fields read from a Hugging Face (ELECTRA or BERT) config.json."""
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    hidden = hf["hidden_size"]
    return {
        "vocab_size": hf["vocab_size"], "embedding_size": hf.get("embedding_size", hidden),
        "hidden_size": hidden, "num_hidden_layers": hf["num_hidden_layers"],
        "num_attention_heads": hf["num_attention_heads"], "intermediate_size": hf["intermediate_size"],
        "hidden_act": hf.get("hidden_act", "gelu"), "dropout_prob": hf.get("hidden_dropout_prob", 0.1),
        "initializer_range": hf.get("initializer_range", 0.02), "layer_norm_eps": hf.get("layer_norm_eps", 1e-12),
        "max_position_embeddings": hf["max_position_embeddings"], "type_vocab_size": hf["type_vocab_size"],
    }


# --- keras-hub presets ---

# A keras-hub backbone's weights: one file, or the index of its shards.
_KERAS_HUB_WEIGHTS = ("model.weights.h5", "model.weights.json")
_KERAS_HUB_EMBEDDING_NAMES = {
    "token_embedding/embeddings": "word_embeddings",
    "position_embedding/embeddings": "position_embeddings",
    "segment_embedding/embeddings": "token_type_embeddings",
    "embeddings_layer_norm/gamma": "LayerNorm/gamma",
    "embeddings_layer_norm/beta": "LayerNorm/beta",
}
# keras-hub's ElectraBackbone ends in a tanh pooler over [CLS] that ELECTRA never had (its sentence vector is
# the [CLS] state): a written preset holds zeros there, so `pooled_output` is plainly untrained (all zeros),
# and reading a preset leaves it out.
KERAS_HUB_POOLER = "pooled_dense"
# What the backbone fixes and an ElectraConfig leaves open. Its transformer layers compute GELU with the tanh
# approximation whatever the weights were trained with; ELECTRA's is the exact erf form.
_KERAS_HUB_FIXED = {"hidden_act": "gelu", "layer_norm_eps": 1e-12}


def keras_hub_names(backbone):
    """{authors' name: variable} of a keras-hub `ElectraBackbone`, its pooler (`KERAS_HUB_POOLER`) left out.

    Example:
    ```python
    backbone = keras_hub.models.ElectraBackbone.from_preset("my_preset")
    arrays = model_arrays(keras_hub_names(backbone))  # {"electra/encoder/layer_0/...": array, ...}
    ```
    """
    names = {}
    for v in backbone.weights:
        layer, _, rest = v.path.partition("/")
        if layer == KERAS_HUB_POOLER:
            continue
        if layer.startswith("transformer_layer_") and rest in _LAYER_NAMES:
            names[f"electra/encoder/layer_{layer[len('transformer_layer_'):]}/{_LAYER_NAMES[rest]}"] = v
        elif layer == "embeddings_projection":
            names[f"electra/embeddings_project/{rest}"] = v
        elif v.path in _KERAS_HUB_EMBEDDING_NAMES:
            names[f"electra/embeddings/{_KERAS_HUB_EMBEDDING_NAMES[v.path]}"] = v
        else:
            raise ValueError(f"{backbone.name}: variable {v.path} is not part of an ELECTRA encoder")
    return names


def keras_hub_backbone_config(config):
    """The `ElectraBackbone` arguments of an `ElectraConfig`'s discriminator.

    Raises:
      ValueError if the config asks for what the backbone cannot compute
      (another activation, another LayerNorm epsilon).
    """
    for field, fixed in _KERAS_HUB_FIXED.items():
        if getattr(config, field) != fixed:
            raise ValueError(f"config: {field}={getattr(config, field)!r}, but keras-hub's ElectraBackbone "
                             f"has {field}={fixed!r} built in")
    return dict(vocab_size=config.vocab_size, num_layers=config.num_hidden_layers,
                num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
                embedding_dim=config.embedding_size, intermediate_dim=config.intermediate_size,
                dropout=config.dropout_prob, max_sequence_length=config.max_position_embeddings,
                num_segments=config.type_vocab_size)


def write_keras_hub(names, config, vocab_file, output_dir):
    """Writes a keras-hub preset of the discriminator: `ElectraBackbone` and `ElectraTokenizer`.

    The files are keras-hub's own (`save_to_preset`): config.json,
    model.weights.h5 and metadata.json for the backbone, tokenizer.json and
    assets/tokenizer/vocabulary.txt for the tokenizer, which lower-cases and
    strips accents when `config.do_lower_case` says so. A backbone holds the
    embeddings and the discriminator's encoder only: the discriminator head
    and the generator are not part of a preset.

    Args:
      names: {authors' name: variable} holding the embeddings and the
        discriminator's encoder (`electra/...`); other parts are left out.
      config: the `ElectraConfig`.
      vocab_file: the model's WordPiece vocabulary.
      output_dir: created if needed.

    Returns:
      The keras-hub backbone written.

    Example:
    ```python
    write_keras_hub(variable_names(pretrainer), config, "vocab.txt", "presets/electra_tiny")
    keras_hub.models.ElectraBackbone.from_preset("presets/electra_tiny")
    ```
    """
    import keras_hub

    from electra_tf import tokenization

    vocab = tokenization.load_vocab(vocab_file)
    if len(vocab) != config.vocab_size:
        raise ValueError(f"{vocab_file} has {len(vocab)} tokens but vocab_size is {config.vocab_size}")
    backbone = keras_hub.models.ElectraBackbone(**keras_hub_backbone_config(config))
    assign(keras_hub_names(backbone), {n: a for n, a in model_arrays(names).items() if n.startswith(ENCODER_PREFIX)})
    for v in backbone.get_layer(KERAS_HUB_POOLER).weights:
        v.assign(np.zeros(v.shape, v.dtype))
    os.makedirs(output_dir, exist_ok=True)
    backbone.save_to_preset(output_dir)
    keras_hub.models.ElectraTokenizer(vocabulary=vocab, lowercase=config.do_lower_case,
                                      strip_accents=config.do_lower_case).save_to_preset(output_dir)
    return backbone


def _keras_hub_json(path, filename, class_name):
    """The `config` of a preset's serialised keras-hub object, checked to be a `class_name`."""
    with open(os.path.join(path, filename)) as f:
        values = json.load(f)
    if values.get("class_name") != class_name:
        raise ValueError(f"{os.path.join(path, filename)}: a keras-hub {values.get('class_name')!r}; "
                         f"electra_tf reads ElectraBackbone presets, whose {filename} holds an {class_name}")
    return values["config"]


def config_overrides_from_keras_hub(preset_dir):
    """ElectraConfig fields read from a keras-hub `ElectraBackbone` preset (config.json, tokenizer.json).

    `hidden_act` is ELECTRA's exact GELU, which the weights were trained
    with, not the tanh approximation keras-hub computes; `do_lower_case` is
    the preset tokenizer's `lowercase` when it has a tokenizer.json.
    """
    backbone = _keras_hub_json(preset_dir, "config.json", "ElectraBackbone")
    values = dict(_KERAS_HUB_FIXED,
                  vocab_size=backbone["vocab_size"], embedding_size=backbone["embedding_dim"],
                  hidden_size=backbone["hidden_dim"], num_hidden_layers=backbone["num_layers"],
                  num_attention_heads=backbone["num_heads"], intermediate_size=backbone["intermediate_dim"],
                  dropout_prob=backbone["dropout"], max_position_embeddings=backbone["max_sequence_length"],
                  type_vocab_size=backbone["num_segments"])
    if os.path.exists(os.path.join(preset_dir, "tokenizer.json")):
        values["do_lower_case"] = _keras_hub_json(preset_dir, "tokenizer.json", "ElectraTokenizer")["lowercase"]
    return values


def _read_keras_hub(preset_dir):
    import keras_hub

    _keras_hub_json(preset_dir, "config.json", "ElectraBackbone")  # A clear error for another model's preset.
    backbone = keras_hub.models.ElectraBackbone.from_preset(preset_dir)
    logging.info("%s: left out the backbone's %s (ELECTRA has no pooler)", preset_dir, KERAS_HUB_POOLER)
    return model_arrays(keras_hub_names(backbone))


# --- Native electra_tf model directories ---

def write_native(output_dir, config, vocab_file, names):
    """Writes an electra_tf model dir: config.json, vocab.txt and a checkpoint of `names`.

    The checkpoint holds `weights`, a dict from the authors' names to
    variables: the layout `run_pretraining.py` checkpoints have too, so a
    pre-training run's model dir is also a native model dir.
    """
    write_model_files(output_dir, config, vocab_file)
    return tf.train.Checkpoint(weights=names).save(os.path.join(output_dir, "ckpt"))


def write_model_files(output_dir, config, vocab_file):
    """Writes the config.json and vocab.txt that make a dir of electra_tf checkpoints a model dir."""
    os.makedirs(output_dir, exist_ok=True)
    config.to_json_file(os.path.join(output_dir, "config.json"))
    shutil.copyfile(vocab_file, os.path.join(output_dir, "vocab.txt"))


# The config fields that fix the shapes of a model's weights; a checkpoint's own config.json says them.
ARCHITECTURE_FIELDS = (
    "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "generator_hidden_size",
    "generator_layers", "weight_sharing", "do_lower_case", "classifier_head")


def architecture_of(path):
    """The `ARCHITECTURE_FIELDS` of the model at `path`, from its config.json.

    An electra_tf model dir (or one of its checkpoints), a Hugging Face dir and a
    keras-hub preset say their shapes; the authors' TF1 checkpoints do not (their `--model_size` does),
    so for those the result is empty.
    """
    source = detect_format(path)
    if source == "native":
        with open(os.path.join(model_dir_of(path), "config.json")) as f:
            values = json.load(f)
    elif source == "hf":
        values = config_overrides_from_hf(path)
        # A classifier from Hugging Face may need its two-layer head. Its weights tell, so they are read when the
        # config names a sequence classifier or no architecture at all; any other model's head is the authors'.
        hf_config = hf_heads.read_hf_config(path)
        architectures = hf_config.get("architectures")
        values["classifier_head"] = "authors"
        if not architectures or hf_heads.ARCHITECTURES["classifier"] in architectures:
            values["classifier_head"] = hf_heads.head_from_hf(hf_config, read_checkpoint(path, "hf"))[1]
    elif source == "keras_hub":
        values = config_overrides_from_keras_hub(path)
    else:
        return {}
    return {k: values[k] for k in ARCHITECTURE_FIELDS if k in values}


def model_dir_of(path):
    """The directory holding a checkpoint's config.json and vocab.txt: `path` itself, or a prefix's directory."""
    return path if os.path.isdir(path) else os.path.dirname(path)


def vocab_file_of(path):
    """The vocabulary shipped with the model at `path` (its vocab.txt, a keras-hub preset's vocabulary.txt), or None."""
    model_dir = model_dir_of(path)
    for candidate in ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt")):
        if os.path.isfile(os.path.join(model_dir, candidate)):
            return os.path.join(model_dir, candidate)
    return None


def _read_native(path):
    path = tf.train.latest_checkpoint(path) or path
    reader = tf.train.load_checkpoint(path)
    arrays = {}
    for key in reader.get_variable_to_shape_map():
        match = re.fullmatch(r"weights/(.+)/\.ATTRIBUTES/VARIABLE_VALUE", key)
        if match:  # Object names escape "/" as ".S" and "." as "..".
            name, value = match.group(1).replace(".S", "/").replace("..", "."), reader.get_tensor(key)
            arrays[name] = value.reshape(_authors_shape(name, value.shape))  # Saved in the model's own shapes.
    if not arrays:
        raise ValueError(f"{path}: no electra_tf weights in this checkpoint")
    return arrays


def detect_format(path):
    """`native`, `hf`, `keras_hub` or `authors_tf1`, from what lies at `path`.

    `path` may also be one checkpoint of an electra_tf run (`<model_dir>/ckpt-400`),
    as the authors' code takes `model.ckpt-N`, to start from a step before the last.
    """
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        if any(os.path.exists(os.path.join(path, f)) for f in ("model.safetensors", "pytorch_model.bin")):
            return "hf"
        if any(os.path.exists(os.path.join(path, f)) for f in _KERAS_HUB_WEIGHTS):
            return "keras_hub"
        if tf.train.latest_checkpoint(path):
            return "native"
    if tf.io.gfile.exists(path + ".index"):
        keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
        return "native" if any(k.startswith("weights/") for k in keys) else "authors_tf1"
    if tf.train.latest_checkpoint(path):
        return "authors_tf1"
    raise ValueError(f"{path}: neither an electra_tf model dir, a Hugging Face model dir, a keras-hub preset "
                     "nor a TF1 checkpoint")


def load_into(names, path, ignore=()):
    """Loads the variables of `names` from a checkpoint of any supported format.

    Args:
      names: {authors' name: variable}.
      path: what `detect_format` recognises.
      ignore: name prefixes the checkpoint may hold beyond `names` (left out and counted).

    Returns:
      (the detected format, the number of checkpoint variables left out).

    Raises:
      ValueError from `assign`, naming what is missing, unused or of the wrong shape.
    """
    source = detect_format(path)
    arrays = read_checkpoint(path, source)
    left_out = [n for n in arrays if n not in names and n.startswith(ignore)] if ignore else []
    assign(names, {n: a for n, a in arrays.items() if n not in left_out})
    return source, len(left_out)


# What a released discriminator (a Hugging Face ELECTRA or BERT encoder) holds: the shared embedding block and
# the discriminator's encoder. The rest of a pre-trainer is left out of such a checkpoint.
ENCODER_PREFIX = "electra/"


def initialize_from(pretrainer, path, encoder_only=False):
    """Loads the weights of an `ElectraPretrainer` from a checkpoint of any supported format.

    Args:
      pretrainer: a built `ElectraPretrainer`.
      path: what `detect_format` recognises.
      encoder_only: load only the embeddings and the discriminator's encoder,
        keeping the generator and both heads as initialised: continued
        pre-training of released weights that come without a generator
        (a Hugging Face discriminator, a BERT model). A source's own
        generator and heads are then left out.

    Returns:
      The detected format.

    Raises:
      ValueError naming what the source lacks (without `encoder_only`, a Hugging
      Face discriminator lacks the generator) or holds beyond the model.
    """
    names = variable_names(pretrainer)
    if not encoder_only:
        return load_into(names, path)[0]
    encoder = {n: v for n, v in names.items() if n.startswith(ENCODER_PREFIX)}
    return load_into(encoder, path, ignore=tuple({n.split("/", 1)[0] + "/" for n in names} - {ENCODER_PREFIX}))[0]
