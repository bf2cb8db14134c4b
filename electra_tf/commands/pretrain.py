"""Pre-trains ELECTRA (or the MLM baseline, or Electric) on TFRecords from build_pretraining_dataset.py.

With no data flags it builds the embedded demo corpus (real Wikipedia lead
sections) and trains the `tiny` model, evaluating on a held-out slice:

    python run_pretraining.py
    python run_pretraining.py --model_size=base --data_dir=pretrain_tfrecords --model_dir=runs/base

Re-running a command resumes from its last checkpoint. The run ends by
writing `<model_dir>/pretraining_summary.json`.
"""

import json
import os
import sys

from absl import flags
from absl import logging

import keras
import tensorflow as tf

from electra_tf import checkpoint_interop
from electra_tf import cli
from electra_tf import commands
from electra_tf import distribution
from electra_tf import electric
from electra_tf import flops
from electra_tf import optimization
from electra_tf import paths
from electra_tf import pretraining_data
from electra_tf import probes as probes_lib
from electra_tf import tokenization
from electra_tf import training
from electra_tf.pretrainer import ElectraPretrainer


cli.define_config_flags()
cli.define_run_flags()
flags.DEFINE_string("data_dir", None, "Directory of pretrain_data.tfrecord-* shards (and optionally "
                    "eval_data.tfrecord-*). Unset: the embedded demo corpus, built in data/demo of a "
                    "checkout, else in $ELECTRA_TF_HOME/demo (default ~/.cache/electra_tf/demo).")
flags.DEFINE_boolean("demo", False, "Build the embedded demo corpus into --data_dir if it has no shards.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab the data was built with (special-token ids). "
                    "Unset: the BERT uncased vocab of the released ELECTRA models.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and the summary. "
                    "Unset: runs/pretrain_<model_size>_<objective>.")
flags.DEFINE_string("init_checkpoint", None, "Start from these weights (an authors' TF1 checkpoint, a Hugging "
                    "Face or an electra_tf model dir, a keras-hub preset dir, or one checkpoint of a run: "
                    "<model_dir>/ckpt-N) unless --model_dir already has a checkpoint.")
flags.DEFINE_boolean("init_encoder_only", False, "Take only the embeddings and the discriminator's encoder from "
                     "--init_checkpoint; the generator and both heads start fresh: continued pre-training of "
                     "released weights without a generator (a Hugging Face discriminator, a keras-hub preset, a BERT "
                     "model).")
flags.DEFINE_boolean("verify_data", True, "Read every shard through before training (record framing and "
                     "checksums) and stop at a corrupt, truncated or foreign file, naming it; --noverify_data "
                     "skips this for a corpus already verified.")
flags.DEFINE_boolean("do_eval", True, "Evaluate on held-out data at the start (step 0) and the end.")
flags.DEFINE_integer("probe_every", 0, "Also run the fixed-difficulty health probes (see electra_tf/probes.py) "
                     "every N steps; with --do_eval they always run at step 0 and at the end. 0: only then.")
FLAGS = flags.FLAGS


def resolve_data(config):
    """Returns (train_files, eval_files, vocab_file, record counts), building the demo data when asked."""
    data_dir = FLAGS.data_dir or os.path.join(paths.data_home(), "demo")
    vocab_file = FLAGS.vocab_file
    if FLAGS.data_dir is None or FLAGS.demo:
        vocab_file = pretraining_data.prepare_demo_data(
            data_dir, config.max_seq_length, config.do_lower_case, seed=config.seed)
    train_files, eval_files = pretraining_data.train_and_eval_files(
        data_dir, hint=", or pass --demo to build the demo corpus there")
    counts = pretraining_data.check_shards(train_files + eval_files, config.max_seq_length, FLAGS.verify_data)
    return train_files, eval_files, vocab_file or pretraining_data.demo_vocab_file(), counts


def show_replacements(pretrainer, batch, vocab_file, model_dir, step):
    """Prints what the generator replaced in three held-out sentences and what the discriminator caught."""
    tables = probes_lib.replacement_table(pretrainer, batch, tokenization.load_vocab(vocab_file))
    with tf.summary.create_file_writer(os.path.join(model_dir, "eval")).as_default(step=step):
        for i, table in enumerate(tables):
            tf.summary.text(f"replacements/sentence_{i}", table)
    print(f"\nHeld-out sentences at step {step}: each token, the generator's sample where it was masked "
          "('=': it drew the original), the discriminator's p(replaced); caught replacements in bold.")
    for table in tables:
        print("\n" + table)


def main(argv):
    del argv
    config = cli.load_config(FLAGS)
    # First TF work: MultiWorkerMirroredStrategy must configure collectives before any other op runs.
    cli.set_determinism(FLAGS)
    cli.set_precision(FLAGS)
    strategy = cli.get_strategy(FLAGS)
    per_replica_batch = distribution.describe(strategy, config.train_batch_size, config.gradient_accumulation_steps)
    model_dir = FLAGS.model_dir or os.path.join("runs", f"pretrain_{FLAGS.model_size}_{config.objective}")
    os.makedirs(model_dir, exist_ok=True)
    train_files, eval_files, vocab_file, counts = resolve_data(config)
    tokenizer = tokenization.WordPieceTokenizer.for_config(vocab_file, config)
    # With the vocab and config beside its checkpoints, the model dir is an electra_tf model dir.
    checkpoint_interop.write_model_files(model_dir, config, vocab_file)

    special_ids = {"cls": tokenizer.cls_id, "sep": tokenizer.sep_id, "mask": tokenizer.mask_id}
    unigram = None
    if config.generator_kind == "unigram":
        # Counted again on a resume from the same files, so the distribution is the same.
        unigram = probes_lib.unigram_distribution(probes_lib.first_batches(train_files, config),
                                                  list(special_ids.values()), config.vocab_size)
    keras.utils.set_random_seed(config.seed)  # The same command gives the same initial weights.
    with strategy.scope():
        if config.objective == "electric":
            pretrainer = electric.ElectricPretrainer(config, special_ids)
        else:
            pretrainer = ElectraPretrainer(config, special_ids, unigram=unigram)
        pretrainer.build_variables()
        pretrainer.compile(optimizer=optimization.create_optimizer(config))
        pretrainer.optimizer.build(pretrainer.trainable_variables)
    # Decided from the chief's checkpoints, so every worker agrees (evaluation is a collective op).
    fresh_start = tf.train.latest_checkpoint(model_dir) is None
    if FLAGS.init_checkpoint and fresh_start:
        with strategy.scope():
            source = checkpoint_interop.initialize_from(pretrainer, FLAGS.init_checkpoint, FLAGS.init_encoder_only)
        logging.info("initialised %sfrom %s (%s)", "the encoder (the generator and heads fresh) "
                     if FLAGS.init_encoder_only else "", FLAGS.init_checkpoint, source)
    jit = cli.jit_compile(FLAGS, config.num_train_steps, strategy.num_replicas_in_sync)
    trainer = training.Trainer(pretrainer, strategy, model_dir, jit, config.keep_checkpoint_max,
                               guard=pretrainer.guard, skip_nonfinite=FLAGS.skip_nonfinite,
                               weights=checkpoint_interop.variable_names(pretrainer))

    def train_dataset(context, start_step):
        return pretraining_data.make_dataset(
            train_files, config.train_batch_size, config.max_seq_length, is_training=True, seed=config.seed,
            input_context=context, start_step=start_step, counts=counts)

    def eval_dataset():
        return pretraining_data.make_dataset(eval_files or train_files, config.eval_batch_size,
                                             config.max_seq_length, is_training=False)

    summary = {"model_size": FLAGS.model_size, "objective": config.objective,
               "per_replica_batch": per_replica_batch, "replicas": strategy.num_replicas_in_sync,
               "mixed_precision": FLAGS.mixed_precision, "jit_compile": trainer.jit_compile}
    if counts is not None:
        summary["train_records"] = sum(counts[p] for p in train_files)
        summary["eval_records"] = sum(counts[p] for p in eval_files)
    # Probes are a forward pass of the chief's copy: no collective op, so the chief alone runs them.
    probes = None
    if FLAGS.do_eval and pretrainer.electra and trainer.chief:
        probes = probes_lib.HealthProbes.from_files(eval_files or train_files, config, pretrainer.special_ids,
                                                    seed=config.seed)
    initial_path = os.path.join(model_dir, "initial_eval.json")
    if FLAGS.do_eval and fresh_start:
        initial = trainer.evaluate(eval_dataset(), config.num_eval_steps)
        if probes is not None:
            initial["probes"] = probes.evaluate_and_log(pretrainer, model_dir, 0)
        if trainer.chief:
            with open(initial_path, "w") as f:
                json.dump(initial, f, indent=2)
    def on_loop_end(step, logs):
        if probes is not None and FLAGS.probe_every and step % FLAGS.probe_every < config.steps_per_loop \
                and step < config.num_train_steps:
            results = probes.evaluate_and_log(pretrainer, model_dir, step)
            logging.info("step %d probes: unigram AUC %.3f, uniform AUC %.3f, [CLS] cosine %.3f", step,
                         results["unigram_auc"], results["uniform_auc"], results["cls_cosine"])

    def train(num_steps, restore=True):
        return trainer.train(
            train_dataset, num_steps, config.steps_per_loop, config.save_checkpoints_steps,
            tokens_per_step=config.train_batch_size * config.max_seq_length,
            flops_per_step=flops.flops_per_step(config), data_files=train_files, on_loop_end=on_loop_end,
            input_log=cli.input_log(FLAGS, model_dir), restore=restore)

    summary.update(pretrainer.train_in_stages(train) if config.two_stage_generator_steps
                   else train(config.num_train_steps))
    if summary["preempted"]:
        return  # Checkpointed; the same command resumes.
    if FLAGS.do_eval:
        if os.path.exists(initial_path):
            with open(initial_path) as f:
                summary["initial_eval"] = json.load(f)
        summary.update(trainer.evaluate(eval_dataset(), config.num_eval_steps))
        if probes is not None:
            summary["probes"] = probes.evaluate_and_log(pretrainer, model_dir, trainer.step)
            show_replacements(pretrainer, probes.batches[0], vocab_file, model_dir, trainer.step)
    logging.info("summary: %s", json.dumps(summary, indent=2))
    if trainer.chief:
        with open(os.path.join(model_dir, "pretraining_summary.json"), "w") as f:
            json.dump(summary, f, indent=2)


def run():
    """The console command's entry point."""
    commands.run(sys.modules[__name__])
