"""A resumable training loop over a model's own `train_step`, under any strategy.

Runs `steps_per_loop` steps inside one `tf.function` (the authors'
`iterations_per_loop`: fewer host round trips, essential on TPUs), shows a
progress bar, writes TensorBoard scalars and checkpoints through
`tf.train.CheckpointManager`. A checkpoint holds the model and the optimizer
(whose `iterations` is the step); the input's position and the model's
randomness are functions of the step (`input_order`), so re-running the same
command continues where the last checkpoint left off, at the same example,
under any strategy and replica count.
"""

import os
import signal
import threading
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from electra_tf import distribution
from electra_tf import records

# What the progress bar shows (logged name: short name), where the model has it: the figures a
# user reads during a run. Everything else the loop logs (FLOPs, loss scale, precision, ...)
# goes to TensorBoard and the summary only, so that the bar's line fits a terminal.
PROGRESS = {"loss": "loss", "mlm_loss": "mlm", "gen_accuracy": "gen_acc", "disc_loss": "disc", "disc_auc": "auc",
            "reward": "reward", "accuracy": "acc", "learning_rate": "lr", "tokens_per_second": "tok/s"}


class Trainer:
    """Trains a compiled Keras model that defines `train_step`/`test_step`.

    Args:
      model: a built Keras model with a built optimizer, created under `strategy.scope()`.
      strategy: the `tf.distribute` strategy.
      model_dir: checkpoints go here, TensorBoard logs under `train/` and `eval/`.
      jit_compile: compile the per-replica step with XLA.
      keep_checkpoint_max: checkpoints kept by the manager.
      guard: the model's `optimization.UpdateGuard`, if any: a step with a
        non-finite gradient stops the run, naming the step and the last good
        checkpoint, unless `skip_nonfinite`.
      skip_nonfinite: keep going past non-finite steps (they are skipped and counted).
      weights: {name: variable} saved by name in every checkpoint (electra_tf
        passes the authors' names, which makes a run's model dir readable by
        `checkpoint_interop`); default: the model's variable paths.

    Example:
    ```python
    trainer = Trainer(model, strategy, "runs/tiny", jit_compile=False)
    dataset_fn = lambda context, start_step: pretraining_data.make_dataset(
        files, 32, 128, is_training=True, input_context=context, start_step=start_step)
    trainer.train(dataset_fn, num_steps=1000, steps_per_loop=50, checkpoint_every=200,
                  tokens_per_step=32 * 128)
    ```
    """

    def __init__(self, model, strategy, model_dir, jit_compile=False, keep_checkpoint_max=5, guard=None,
                 skip_nonfinite=False, weights=None):
        self.model = model
        self.weights = weights or {v.path.split("/", 1)[-1]: v for v in model.weights}
        self.guard = guard
        self.skip_nonfinite = skip_nonfinite
        self.preempted = threading.Event()
        self.strategy = strategy
        self.model_dir = model_dir
        self.jit_compile = jit_compile
        self.keep_checkpoint_max = keep_checkpoint_max
        self.chief = distribution.is_chief(strategy)

    @property
    def step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _checkpoint_manager(self):
        # `model.variables` also holds the dropout layers' random-seed states,
        # which `tf.train.Checkpoint(model=...)` does not track; without them a
        # resumed run would draw different dropout masks.
        weights = {id(w) for w in self.model.weights}
        seed_states = [v for v in self.model.variables if id(v) not in weights]
        # Keras 3 layers do not expose their sub-layers to TF's object graph, so
        # the weights are saved by name rather than through `model`.
        state = dict(model=self.model, optimizer=self.model.optimizer, seed_states=seed_states,
                     weights=self.weights)
        checkpoint = tf.train.Checkpoint(**state)
        # Every worker must save (saving is a collective op), but only the chief's copy is kept.
        directory = self.model_dir if self.chief else os.path.join(
            self.model_dir, f"worker_tmp_{self.strategy.cluster_resolver.task_id}")
        return tf.train.CheckpointManager(
            checkpoint, directory, max_to_keep=self.keep_checkpoint_max,
            step_counter=self.model.optimizer.iterations)

    def train(self, dataset_fn, num_steps, steps_per_loop, checkpoint_every, tokens_per_step,
              on_loop_end=None, flops_per_step=None, data_files=None, input_log=None, restore=True):
        """Trains until the optimizer has made `num_steps` steps, resuming if possible.

        Args:
          dataset_fn: `(tf.distribute.InputContext, start_step) -> tf.data.Dataset`
            of this input pipeline's per-replica batches, beginning with step
            `start_step`'s (see `input_order`).
          num_steps: the total step count to reach.
          steps_per_loop: steps per `tf.function` call, and the logging interval.
          checkpoint_every: save at each multiple of this many steps (at the end of the loop
            that reaches it), and at the end.
          tokens_per_step: global tokens per step, for throughput figures.
          on_loop_end: optional callable(step, logs) after each loop.
          flops_per_step: training FLOPs of one step; logs `train_flops`, the total so far.
          data_files: the TFRecord files `dataset_fn` reads: a corrupt record met
            in training is then reported by file name, after a checkpoint.
          input_log: a path: append "step<TAB>fingerprint" per step, a checksum of
            the global batch's `input_ids` that does not depend on how the batch
            is split over replicas (to check that a resumed or rescaled run reads
            the same data).
          restore: False continues from the model's current weights instead of the
            latest checkpoint (they hold a later state, e.g. changed between two calls).

        Returns:
          dict with the last logged metrics, `steps`, `tokens` and `wall_seconds`
          (of this invocation), `tokens_per_second` (over the wall time, tracing
          and XLA compilation included), `steady_tokens_per_second` (after the
          first loop, which holds them; absent when there was one loop only),
          `nonfinite_steps`, and `preempted` (true when a SIGTERM stopped it after
          a checkpoint).
        """
        manager = self._checkpoint_manager()
        # Every worker resumes from the chief's checkpoint.
        latest = tf.train.latest_checkpoint(self.model_dir)
        if latest and restore:
            manager.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info("resumed from %s at step %d", latest, self.step)
        start_step = self.step
        if start_step >= num_steps:
            logging.info("already trained for %d steps; nothing to do", start_step)
            return {"steps": start_step, "tokens": 0, "wall_seconds": 0.0, "tokens_per_second": 0.0,
                    "preempted": False}
        iterator = iter(self.strategy.distribute_datasets_from_function(
            lambda context: dataset_fn(context, start_step)))
        step_fn = tf.function(self.model.train_step, jit_compile=self.jit_compile)

        @tf.function
        def train_loop(iterator, loop_steps):
            fingerprints = tf.TensorArray(tf.int64, size=loop_steps if input_log else 0, element_shape=())
            for i in tf.range(loop_steps):
                batch = next(iterator)
                self.strategy.run(step_fn, args=(batch,))
                if input_log:  # Python-static: without a log the loop does nothing more.
                    fingerprints = fingerprints.write(i, self.strategy.reduce(
                        tf.distribute.ReduceOp.SUM, self.strategy.run(_fingerprint, args=(batch,)), axis=None))
            return fingerprints.stack()

        previous_handler = self._catch_sigterm()
        try:
            nonfinite_before = int(self.guard.nonfinite_steps.numpy()) if self.guard is not None else 0
            writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train")) if self.chief \
                else tf.summary.create_noop_writer()
            progress = keras.utils.Progbar(num_steps, stateful_metrics=list(PROGRESS.values()), unit_name="step")
            begin = time.time()
            logs = {}
            saved_step = start_step
            steady = None  # (time, step) at the end of the first loop: tracing and compilation are behind.
            while self.step < num_steps:
                loop_steps = min(steps_per_loop, num_steps - self.step)
                loop_start = time.time()
                for metric in self.model.metrics:
                    metric.reset_state()
                first_step = self.step
                try:
                    fingerprints = train_loop(iterator, tf.constant(loop_steps))
                except tf.errors.DataLossError as e:
                    self._stop_at_bad_record(e, manager, data_files)
                if input_log and self.chief:
                    with open(input_log, "a") as f:
                        f.writelines(f"{first_step + i}\t{v}\n" for i, v in enumerate(fingerprints.numpy()))
                seconds = time.time() - loop_start
                logs = {m.name: float(m.result()) for m in self.model.metrics}
                logs["learning_rate"] = float(self.model.optimizer.learning_rate)
                logs["tokens_per_second"] = loop_steps * tokens_per_step / seconds
                if flops_per_step:
                    logs["train_flops"] = float(self.step * flops_per_step)
                if self.guard is not None:
                    logs["loss_scale"] = float(self.guard.loss_scale.numpy())
                    logs["nonfinite_steps"] = int(self.guard.nonfinite_steps.numpy())
                with writer.as_default(step=self.step):
                    for name, value in logs.items():
                        tf.summary.scalar(name, value)
                progress.update(self.step, [(short, logs[k]) for k, short in PROGRESS.items() if k in logs])
                # At each multiple of checkpoint_every (or the first loop end past it), as the
                # authors' runs save model.ckpt-N, so a step's checkpoint can be named in advance.
                if self.step // checkpoint_every > first_step // checkpoint_every:
                    manager.save(checkpoint_number=self.step)
                    saved_step = self.step
                self._check_finite(logs, manager, nonfinite_before)
                if on_loop_end:
                    on_loop_end(self.step, logs)
                if self.preempted.is_set():
                    break
                steady = steady or (time.time(), self.step)
            if saved_step != self.step:
                manager.save(checkpoint_number=self.step, check_interval=False)
            if self.preempted.is_set():
                logging.warning("SIGTERM: saved step %d to %s; run the same command again to resume",
                                self.step, manager.latest_checkpoint)
            writer.flush()
            end = time.time()
            tokens = (self.step - start_step) * tokens_per_step
            summary = {**logs, "steps": self.step, "tokens": tokens, "wall_seconds": end - begin,
                       "tokens_per_second": tokens / (end - begin), "preempted": self.preempted.is_set()}
            if steady and self.step > steady[1]:
                summary["steady_tokens_per_second"] = (self.step - steady[1]) * tokens_per_step / (end - steady[0])
            return summary
        finally:
            if previous_handler is not None:  # Leave the process's SIGTERM handling as it was.
                signal.signal(signal.SIGTERM, previous_handler)

    def _catch_sigterm(self):
        """On SIGTERM (a preempted VM or TPU), finish the current loop, checkpoint and return.

        Returns the handler it replaced (None off the main thread, where it cannot install one).
        """
        if threading.current_thread() is threading.main_thread():
            return signal.signal(signal.SIGTERM, lambda signum, frame: self.preempted.set())
        return None

    def _stop_at_bad_record(self, error, manager, data_files):
        """Saves the steps done so far, then raises an error naming the file that holds the bad record."""
        path = manager.save(checkpoint_number=self.step, check_interval=False)
        culprit = records.find_corrupt(data_files or []) or f"a data file ({error.message.strip()})"
        raise records.CorruptRecordsError(
            f"step {self.step}: training met a bad record: {culprit}. Saved step {self.step} to {path}; "
            "replace or rebuild the file and run the same command again to resume.") from None

    def _check_finite(self, logs, manager, nonfinite_before):
        if self.guard is None or self.skip_nonfinite or logs["nonfinite_steps"] == nonfinite_before:
            return
        step = int(self.guard.last_nonfinite_step.numpy())
        raise FloatingPointError(
            f"step {step}: the loss or gradient is not finite (NaN/Inf); that update was not applied. "
            f"The last good checkpoint is {manager.latest_checkpoint}. Lower the learning rate, "
            "check the data, or pass --skip_nonfinite to skip and count such steps.")

    def predict(self, dataset):
        """The model's `predict_step` outputs (a tensor or a dict) over a dataset of global batches, in order, as numpy."""
        step_fn = tf.function(self.model.predict_step, jit_compile=self.jit_compile)

        @tf.function
        def predict_step(batch):
            return self.strategy.gather(self.strategy.run(step_fn, args=(batch,)), axis=0)

        outputs = [tf.nest.map_structure(lambda t: t.numpy(), predict_step(batch))
                   for batch in self.strategy.experimental_distribute_dataset(dataset)]
        if not outputs:
            raise ValueError("prediction data produced no batch")
        return tf.nest.map_structure(lambda *batches: np.concatenate(batches), *outputs)

    def evaluate(self, dataset, num_steps=None):
        """Runs `test_step` over a dataset (at most `num_steps` batches) and returns the metrics."""
        step_fn = tf.function(self.model.test_step, jit_compile=self.jit_compile)

        @tf.function
        def eval_step(batch):
            self.strategy.run(step_fn, args=(batch,))

        for metric in self.model.metrics:
            metric.reset_state()
        batches = 0
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            eval_step(batch)
            batches += 1
            if num_steps and batches >= num_steps:
                break
        if not batches:
            raise ValueError("evaluation data produced no full batch; lower --eval_batch_size")
        results = {m.name: float(m.result()) for m in self.model.metrics}
        if self.chief:
            with tf.summary.create_file_writer(os.path.join(self.model_dir, "eval")).as_default(step=self.step):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
        return results


def _fingerprint(batch):
    """A checksum of one replica's `input_ids`; summed over replicas it is the global batch's, however split."""
    ids = tf.cast(batch["input_ids"], tf.int64)
    rows = tf.reduce_sum(ids * tf.range(1, tf.shape(ids, out_type=tf.int64)[1] + 1), axis=1) % 1_000_003
    return tf.reduce_sum(rows * rows)
