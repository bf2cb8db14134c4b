import glob
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from conftest import run_script, script_errors
from electra_tf import checkpoint_interop, flops
from electra_tf.config import ElectraConfig

TINY = ["--max_seq_length=64", "--train_batch_size=8", "--eval_batch_size=16", "--num_eval_steps=2",
        "--steps_per_loop=3", "--save_checkpoints_steps=3", "--num_warmup_steps=2"]


def test_run_pretraining_end_to_end_and_resume(demo_data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    args = [f"--data_dir={demo_data_dir}", f"--model_dir={model_dir}", *TINY]
    # Resuming is tested in test_faults.py, under two strategies, killed and preempted.
    done = run_script("run_pretraining.py", *args, "--num_train_steps=7", "--probe_every=3")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 3 probes: unigram AUC" in done.stderr and "step 6 probes: unigram AUC" in done.stderr
    # The last step is saved even when it falls between two checkpoint intervals.
    assert os.path.basename(tf.train.latest_checkpoint(model_dir)) == "ckpt-7"
    with open(os.path.join(model_dir, "pretraining_summary.json")) as f:
        summary = json.load(f)
    assert summary["steps"] == 7 and summary["tokens"] == 7 * 8 * 64
    assert summary["jit_compile"] is False  # On CPU XLA is the default from 100 steps: 7 would not repay it.
    config = ElectraConfig.from_json_file(os.path.join(model_dir, "config.json"))
    assert summary["train_flops"] == 7 * flops.flops_per_step(config)
    # Loops of 3, 3 and 1 steps: the steady figure counts the 4 steps after the first loop (which traces).
    assert 0 < summary["tokens_per_second"] < summary["steady_tokens_per_second"]
    # The progress bar shows what a user reads; FLOPs, loss scale and the like stay in TensorBoard.
    assert all(f" {name}: " in done.stdout for name in ("loss", "mlm", "gen_acc", "disc", "auc", "lr", "tok/s"))
    assert "flops" not in done.stdout and "loss_scale" not in done.stdout
    for key in ("wall_seconds", "tokens_per_second", "steady_tokens_per_second", "disc_auc", "disc_accuracy", "gen_accuracy",
                "mlm_loss", "disc_loss"):
        assert isinstance(summary[key], float), key
    assert summary["initial_eval"]["gen_accuracy"] < 0.01
    for probes in (summary["probes"], summary["initial_eval"]["probes"]):
        assert 0 <= probes["unigram_auc"] <= 1 and probes["uniform_base_rate_loss"] > 0 and "cls_cosine" in probes
    assert os.listdir(os.path.join(model_dir, "train")) and os.listdir(os.path.join(model_dir, "eval"))
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["max_seq_length"] == 64
    assert open(os.path.join(model_dir, "vocab.txt")).read().splitlines()[101:104] == ["[CLS]", "[SEP]", "[MASK]"]

    # The run's model dir is an electra_tf model dir: --init_checkpoint takes it, under the authors' names.
    weights = checkpoint_interop.read_checkpoint(model_dir, "native")
    assert "generator/encoder/layer_0/attention/self/query/kernel" in weights
    assert "discriminator_predictions/dense_1/kernel" in weights
    # So is one of its checkpoints, as the authors' code takes model.ckpt-N.
    prefix = tf.train.latest_checkpoint(model_dir)
    assert checkpoint_interop.detect_format(prefix) == "native" and checkpoint_interop.model_dir_of(prefix) == model_dir
    assert all(np.array_equal(weights[n], a) for n, a in checkpoint_interop.read_checkpoint(prefix, "native").items())
    started = run_script("run_pretraining.py", f"--data_dir={demo_data_dir}", f"--model_dir={tmp_path / 'again'}",
                         *TINY, "--num_train_steps=1", "--do_eval=false", f"--init_checkpoint={model_dir}")
    assert started.returncode == 0, started.stderr[-3000:]
    assert f"initialised from {model_dir} (native)" in started.stderr

    # Re-running a finished command is a no-op that still succeeds.
    again = run_script("run_pretraining.py", *args, "--num_train_steps=7", "--do_eval=false")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already trained for 7 steps" in again.stderr


def test_run_pretraining_bad_flags_give_clear_errors(demo_data_dir, tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(demo_data_dir, truncated)
    bad = truncated / "pretrain_data.tfrecord-2-of-4"
    bad.write_bytes(bad.read_bytes()[:bad.stat().st_size // 3])
    cases = [
        (["--model_size=huge"], "unknown model size 'huge'"),
        (["--strategy=default", "--cpu_replicas=2"], "--cpu_replicas=2 runs MirroredStrategy over logical CPUs"),
        (["--cpu_replicas=0"], "--cpu_replicas=0: must be at least 1"),
        (["--hparams={\"bogus\": 1}"], "unknown config key(s) ['bogus']"),
        ([f"--data_dir={tmp_path}"], f"--data_dir={tmp_path}: no pretrain_data.tfrecord* files; build them with "
                                     "electra-build-data (build_pretraining_dataset.py), or pass --demo"),
        ([f"--data_dir={demo_data_dir}", "--max_seq_length=128"], "examples have length 64 but max_seq_length is 128"),
        # Caught before training starts: no checkpoint is written.
        ([f"--data_dir={truncated}", "--max_seq_length=64"], f"{bad}: truncated or corrupt after"),
    ]
    errors = script_errors("run_pretraining.py", [[f"--model_dir={tmp_path / 'm'}", *flags] for flags, _ in cases])
    for (flags, message), error in zip(cases, errors):
        assert message in error, (flags, error)
    assert not glob.glob(str(tmp_path / "m" / "ckpt-*"))


def test_build_pretraining_dataset_cli(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "doc.txt").write_bytes(b"First sentence here.\nSecond one \xff.\n\nNext doc.\n")
    result = run_script("build_pretraining_dataset.py", f"--corpus_dir={corpus}", f"--vocab_file={vocab_file}",
                        f"--output_dir={tmp_path / 'out'}", "--max_seq_length=32", "--num_out_files=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 examples" in result.stdout and "1 lines with invalid UTF-8 replaced" in result.stdout
    # The shards and the hidden manifest of the finished job (a re-run skips it); nothing else.
    assert sorted(os.listdir(tmp_path / "out")) == [".pretrain_data.build-0-of-1.json", "pretrain_data.tfrecord-0-of-2",
                                                   "pretrain_data.tfrecord-1-of-2"]
    missing = run_script("build_pretraining_dataset.py", f"--corpus_dir={tmp_path / 'nope'}",
                         f"--vocab_file={vocab_file}", f"--output_dir={tmp_path / 'o'}")
    assert missing.returncode != 0 and "corpus_dir not found" in missing.stderr
