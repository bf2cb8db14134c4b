"""One configuration object for ELECTRA, loaded from `configs/<size>.json`.

The JSON files are the single source of truth for hyper-parameters: the
dataclass below declares names and types only, so a value lives in exactly one
place. Overrides come from an `--hparams` JSON (string or file) and from flags,
both using the authors' names.
"""

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

from electra_tf import paths

# The pre-training objectives: ELECTRA's, the MLM baseline, the paper's alternatives and Electric
# (docs/pretraining_variants.md).
OBJECTIVES = ("electra", "mlm", "electra_15", "replace_mlm", "all_tokens_mlm", "electric")
# Objectives whose full-size model reads the generator's samples.
SAMPLING_OBJECTIVES = ("electra", "electra_15", "replace_mlm", "all_tokens_mlm", "electric")
# Objectives whose full-size model is a replaced-token discriminator.
DISCRIMINATOR_OBJECTIVES = ("electra", "electra_15")
# What the generator and the discriminator share (the paper's section 3.2).
WEIGHT_SHARING = ("none", "embeddings", "all")
# Where the replacements come from: a trained masked LM, a fixed distribution without weights, or
# Electric's cloze generator (a left-to-right and a right-to-left Transformer, electric.py).
GENERATOR_KINDS = ("mlm", "uniform", "unigram", "two_tower")
FIXED_GENERATORS = ("uniform", "unigram")
# How a masked-LM generator learns: maximum likelihood, or adversarial ELECTRA's REINFORCE against the
# discriminator (the paper's Appendix F).
GENERATOR_TRAINING = ("mle", "adversarial")
# A classifier's head: the authors' ([CLS] -> dropout -> dense) or Hugging Face's ElectraClassificationHead
# ([CLS] -> dropout -> dense(H) -> GELU -> dropout -> dense), which a classifier from Hugging Face comes with.
CLASSIFIER_HEADS = ("authors", "hf")
# Fields newer than electra_tf 0.2.0, with the value that does what 0.2.0 did: a model dir's config.json written
# before they existed still loads (`from_json_file`). The size files in configs/ must name every field.
SAVED_CONFIG_DEFAULTS = {"classifier_head": "authors", "generator_kind": "mlm", "weight_sharing": "embeddings",
                         "two_stage_generator_steps": 0, "generator_training": "mle"}
# A size file may say why it departs from the paper: {field: reason}, for readers, never applied.
REASONS_KEY = "_why"


@dataclasses.dataclass(frozen=True)
class ElectraConfig:
    """Model, objective and optimisation settings of one ELECTRA run.

    Field names follow the authors' `configure_pretraining.py` and BERT's
    `bert_config.json`, so their `--hparams` strings work unchanged.

    Example:
    ```python
    config = ElectraConfig.from_size("small", {"train_batch_size": 32})
    config.generator_hidden  # 64
    ```
    """

    vocab_size: int
    embedding_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    dropout_prob: float
    initializer_range: float
    layer_norm_eps: float
    max_position_embeddings: int
    type_vocab_size: int
    generator_hidden_size: float
    generator_layers: float
    objective: str
    weight_sharing: str
    generator_kind: str
    # > 0: the paper's two-stage training, the generator alone for this many steps, then the discriminator.
    two_stage_generator_steps: int
    generator_training: str
    max_seq_length: int
    mask_prob: float
    temperature: float
    gen_weight: float
    disc_weight: float
    disc_output_bias: float
    disallow_correct: bool
    learning_rate: float
    lr_decay_power: float
    num_warmup_steps: int
    num_train_steps: int
    weight_decay_rate: float
    adam_beta_1: float
    adam_beta_2: float
    adam_epsilon: float
    # False: the authors' AdamWeightDecayOptimizer (no bias correction); True: Keras' corrected Adam.
    adam_bias_correction: bool
    clip_norm: float
    train_batch_size: int
    gradient_accumulation_steps: int
    eval_batch_size: int
    num_eval_steps: int
    save_checkpoints_steps: int
    keep_checkpoint_max: int
    steps_per_loop: int
    do_lower_case: bool
    seed: int
    # Fine-tuning. `finetuning` holds the values that replace pre-training's
    # for a fine-tuning run (`from_size(..., task=...)`), under the same names.
    layerwise_lr_decay: float
    num_train_epochs: float
    warmup_proportion: float
    # Question answering (SQuAD): windows, post-processing and the authors' heads.
    doc_stride: int
    max_query_length: int
    n_best_size: int
    max_answer_length: int
    answerable_weight: float
    qa_beam_size: int
    qa_joint_hidden_size: int
    classifier_head: str
    finetuning: dict

    def __post_init__(self):
        _check_types(self)
        positive = (
            "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
            "num_attention_heads", "intermediate_size", "max_position_embeddings",
            "type_vocab_size", "max_seq_length", "num_train_steps", "train_batch_size", "gradient_accumulation_steps",
            "eval_batch_size", "save_checkpoints_steps", "keep_checkpoint_max",
            "steps_per_loop", "learning_rate", "temperature", "num_train_epochs",
            "doc_stride", "max_query_length", "n_best_size", "max_answer_length", "qa_beam_size",
            "qa_joint_hidden_size",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"config: {name} must be positive, got {getattr(self, name)!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"config: objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.classifier_head not in CLASSIFIER_HEADS:
            raise ValueError(f"config: classifier_head must be one of {CLASSIFIER_HEADS}, got {self.classifier_head!r}")
        self._check_variant()
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"config: mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}")
        if self.max_seq_length > self.max_position_embeddings:
            raise ValueError(
                f"config: max_seq_length {self.max_seq_length} exceeds "
                f"max_position_embeddings {self.max_position_embeddings}")
        if self.train_batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"config: train_batch_size {self.train_batch_size} is not divisible by "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}")
        if self.num_warmup_steps < 0 or self.num_eval_steps < 0:
            raise ValueError("config: num_warmup_steps and num_eval_steps must be >= 0")
        if not 0.0 < self.layerwise_lr_decay <= 1.0 or not 0.0 <= self.warmup_proportion < 1.0:
            raise ValueError("config: layerwise_lr_decay must be in (0, 1] and warmup_proportion in [0, 1)")
        unknown = sorted(set(self.finetuning) - {f.name for f in dataclasses.fields(self)} - {"finetuning"})
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown} in finetuning")

    def _check_variant(self):
        if self.weight_sharing not in WEIGHT_SHARING:
            raise ValueError(f"config: weight_sharing must be one of {WEIGHT_SHARING}, got {self.weight_sharing!r}")
        if self.generator_kind not in GENERATOR_KINDS:
            raise ValueError(f"config: generator_kind must be one of {GENERATOR_KINDS}, got {self.generator_kind!r}")
        # As the authors' configure_pretraining.py: Electric needs the two-tower cloze generator, whose
        # predictions for every token are what Electric's noise distribution q is; nothing else uses it.
        if (self.objective == "electric") != (self.generator_kind == "two_tower"):
            raise ValueError(f"config: objective=electric needs generator_kind=two_tower and two_tower is "
                             f"only Electric's, got objective={self.objective!r} with "
                             f"generator_kind={self.generator_kind!r}")
        # The two towers embed with the discriminator's embeddings (electric.py); other sharing is not built.
        if self.objective == "electric" and self.weight_sharing != "embeddings":
            raise ValueError(f"config: objective=electric shares the embeddings between its two-tower generator "
                             f"and the discriminator, so weight_sharing must be 'embeddings', got "
                             f"{self.weight_sharing!r}")
        if self.two_stage_generator_steps < 0:
            raise ValueError(f"config: two_stage_generator_steps must be >= 0, got {self.two_stage_generator_steps}")
        if not self.has_generator_network and self.weight_sharing != "embeddings":
            raise ValueError(f"config: weight_sharing={self.weight_sharing!r} needs a generator network, which "
                             f"objective={self.objective!r} with generator_kind={self.generator_kind!r} has not")
        if self.objective == "mlm" and self.generator_kind != "mlm":
            raise ValueError(f"config: objective='mlm' trains no generator; generator_kind={self.generator_kind!r} "
                             "goes with the sampling objectives")
        if self.full_size_generator and (self.generator_hidden_size != 1.0 or self.generator_layers != 1.0):
            why = "weight_sharing='all'" if self.weight_sharing == "all" else "two_stage_generator_steps > 0"
            raise ValueError(f"config: {why} needs a generator the discriminator's size: set generator_hidden_size "
                             f"and generator_layers to 1.0 (got {self.generator_hidden_size}, {self.generator_layers})")
        if self.generator_training not in GENERATOR_TRAINING:
            raise ValueError(f"config: generator_training must be one of {GENERATOR_TRAINING}, "
                             f"got {self.generator_training!r}")
        # The reward is the loss of a replaced-token discriminator trained alongside, at the samples of a masked LM.
        if self.generator_training == "adversarial" and (
                self.objective not in DISCRIMINATOR_OBJECTIVES or self.generator_kind != "mlm"
                or self.two_stage_generator_steps):
            raise ValueError(f"config: generator_training='adversarial' trains a masked-LM generator to fool the "
                             f"discriminator, so it needs objective in {DISCRIMINATOR_OBJECTIVES}, "
                             f"generator_kind='mlm' and two_stage_generator_steps=0; got objective="
                             f"{self.objective!r}, generator_kind={self.generator_kind!r}, "
                             f"two_stage_generator_steps={self.two_stage_generator_steps}")
        if self.two_stage_generator_steps:
            if self.objective != "electra" or self.generator_kind != "mlm" or self.weight_sharing != "none":
                raise ValueError("config: two_stage_generator_steps goes with objective='electra', "
                                 "generator_kind='mlm' and weight_sharing='none' (the generator frozen in the second "
                                 f"stage owns all its weights); got {self.objective!r}, {self.generator_kind!r}, "
                                 f"{self.weight_sharing!r}")
            if self.embedding_size != self.hidden_size:
                raise ValueError(f"config: two_stage_generator_steps initialises the discriminator from the "
                                 f"generator, whose own embeddings are hidden_size wide ({self.hidden_size}): set "
                                 f"embedding_size to it (got {self.embedding_size})")
            if self.two_stage_generator_steps >= self.num_train_steps:
                raise ValueError(f"config: two_stage_generator_steps ({self.two_stage_generator_steps}) leaves no "
                                 f"step of num_train_steps ({self.num_train_steps}) for the discriminator")

    @property
    def has_generator_network(self) -> bool:
        """Whether a generator network is trained: a masked LM or Electric's two towers (not a fixed distribution)."""
        return self.objective in SAMPLING_OBJECTIVES and self.generator_kind not in FIXED_GENERATORS

    @property
    def full_size_generator(self) -> bool:
        """All weights shared, or two-stage training: the generator is the discriminator's size."""
        return self.weight_sharing == "all" or self.two_stage_generator_steps > 0

    # Derived sizes, computed the authors' way rather than stored twice.
    @property
    def max_predictions_per_seq(self) -> int:
        return int((self.mask_prob + 0.005) * self.max_seq_length)

    @property
    def generator_hidden(self) -> int:
        return max(1, int(round(self.hidden_size * self.generator_hidden_size)))

    @property
    def generator_num_layers(self) -> int:
        return max(1, int(round(self.num_hidden_layers * self.generator_layers)))

    @property
    def generator_heads(self) -> int:
        # A full-size generator is the discriminator's architecture (the authors build it from bert_config).
        return self.num_attention_heads if self.full_size_generator else max(1, self.generator_hidden // 64)

    @property
    def generator_intermediate(self) -> int:
        return self.intermediate_size if self.full_size_generator else 4 * self.generator_hidden

    @property
    def generator_embedding_size(self) -> int:
        """Width of the generator's word embeddings: the shared block's, or untied its hidden size (the authors')."""
        return self.generator_hidden if self.weight_sharing == "none" else self.embedding_size

    def replace(self, **overrides) -> "ElectraConfig":
        """Returns a copy with `overrides` applied (validated like a load)."""
        return ElectraConfig.from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json_file(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "ElectraConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {unknown}")
        missing = sorted(names - set(values))
        if missing:
            raise ValueError(f"{source}: missing config key(s) {missing}")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path: str) -> "ElectraConfig":
        """A saved config (a model dir's config.json); fields it predates take `SAVED_CONFIG_DEFAULTS`."""
        return cls.from_dict({**SAVED_CONFIG_DEFAULTS, **_read_json(path)}, source=path)

    @classmethod
    def from_size(cls, model_size: str, overrides: Optional[Mapping[str, Any]] = None,
                  task: Optional[str] = None) -> "ElectraConfig":
        """Loads `configs/<model_size>.json`, then applies `overrides`.

        The file's `_why` object (why a value departs from the paper) is read
        past. With a fine-tuning `task`, the file's `finetuning` values and the task's
        entry in `configs/finetuning/tasks.json` (RTE and STS-B train for 10
        epochs) come before `overrides`, so flags still have the last word.
        """
        path = os.path.join(paths.config_dir(), f"{model_size}.json")
        if not os.path.exists(path):
            raise ValueError(f"unknown model size {model_size!r}: choose one of {available_sizes()}")
        values = _read_json(path)
        reasons = values.pop(REASONS_KEY, {})
        unknown = sorted(set(reasons) - set(values))
        if unknown:
            raise ValueError(f"{path}: {REASONS_KEY} gives reasons for unknown key(s) {unknown}")
        if task is not None:
            values.update(values.get("finetuning", {}))
            values.update(_read_json(os.path.join(paths.config_dir(), "finetuning", "tasks.json")).get(task, {}))
        values.update(overrides or {})
        return cls.from_dict(values, source=f"{path} with overrides")


def available_sizes():
    return sorted(f[:-5] for f in os.listdir(paths.config_dir()) if f.endswith(".json"))


def parse_hparams(hparams: Optional[str]) -> dict:
    """Reads `--hparams`: a JSON object given inline or as a path to a file."""
    if not hparams:
        return {}
    text = hparams
    if not hparams.lstrip().startswith("{"):
        if not os.path.exists(hparams):
            raise ValueError(f"--hparams: {hparams!r} is neither a JSON object nor an existing file")
        with open(hparams) as f:
            text = f.read()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--hparams: invalid JSON ({e})") from e
    if not isinstance(values, dict):
        raise ValueError("--hparams: expected a JSON object of name: value pairs")
    return values


def field_types() -> dict:
    """Maps each config field name to its Python type, for defining flags (`finetuning` is set by --hparams)."""
    return {f.name: f.type for f in dataclasses.fields(ElectraConfig) if f.type is not dict}


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def _check_types(config):
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        expected = f.type
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(config, f.name, float(value))
            continue
        if expected is int and isinstance(value, float) and value.is_integer():
            object.__setattr__(config, f.name, int(value))
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"config: {f.name} must be {expected.__name__}, got {value!r}")
