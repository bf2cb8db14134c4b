"""The wheel, installed into a fresh virtual environment, works away from the checkout."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

from conftest import REPO

COMMANDS = ("electra-pretrain", "electra-finetune", "electra-build-data", "electra-export", "electra-convert")


def _build_wheel(tmp_path):
    """Builds the wheel from a copy of the sources, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    for name in ("electra_tf", "configs"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.iterdir()
    return wheel


def _fresh_venv(tmp_path):
    """A new virtual environment that sees this one's packages (TensorFlow, data packages) but not the checkout.

    A plain path in a .pth file puts the test environment's site-packages on sys.path
    without running the .pth files there, among them the editable install's link to the checkout.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "reused_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_installs_and_its_commands_run_from_an_empty_directory(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = _fresh_venv(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    bin_dir = venv / "bin"
    assert all((bin_dir / name).exists() for name in COMMANDS)

    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    env = dict(os.environ, ELECTRA_TF_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")

    def run(*command, check=True):
        done = subprocess.run([str(c) for c in command], cwd=empty, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0 or not check, (command, done.stderr[-3000:])
        return done

    imported = run(bin_dir / "python", "-c", "import electra_tf; from electra_tf.config import ElectraConfig; "
                   "c = ElectraConfig.from_size('base'); print(electra_tf.__file__, c.hidden_size, c.generator_hidden)")
    where, hidden, generator = imported.stdout.split()
    assert where.startswith(str(venv)) and (hidden, generator) == ("768", "256")

    run(bin_dir / "electra-pretrain", "--num_train_steps=2", "--do_eval=false", "--max_seq_length=64",
        "--model_dir=pretrained")
    summary = json.load(open(empty / "pretrained" / "pretraining_summary.json"))
    assert summary["steps"] == 2
    # The demo corpus went to $ELECTRA_TF_HOME, not into site-packages or the working directory.
    assert json.load(open(home / "demo" / "demo_data.json"))["max_seq_length"] == 64
    assert sorted(os.listdir(empty)) == ["pretrained"]

    (empty / "train.tsv").write_text("".join(f"{label}\t{text}\n" for label, text in [
        ("pos", "a fine and lovely film"), ("neg", "dull and far too long"), ("pos", "great acting"),
        ("neg", "a waste of time")] * 4))
    done = run(bin_dir / "electra-finetune", "--task=text_classification", "--train_file=train.tsv",
               "--dev_file=train.tsv", "--init_checkpoint=pretrained", "--max_seq_length=32", "--train_batch_size=8",
               "--num_train_epochs=1", "--model_dir=finetuned")
    assert json.loads(done.stdout.strip().splitlines()[-1])["task"] == "text_classification"
    assert (empty / "finetuned" / "results.json").exists()

    corpus = empty / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The first sentence of a document.\nIts second sentence.\n\nAnother document.\n")
    built = run(bin_dir / "electra-build-data", "--corpus_dir=corpus", "--vocab_file=pretrained/vocab.txt",
                "--output_dir=records", "--max_seq_length=32", "--num_out_files=1")
    assert int(built.stdout.split()[0]) > 0 and os.listdir(empty / "records")

    exported = run(bin_dir / "electra-export", "--model_dir=finetuned/trial_1", "--export_dir=exports",
                   "--kind=classifier", "--sample_text=a lovely film")
    assert "exported classifier" in exported.stdout and (empty / "exports" / "electra_classifier" / "1").is_dir()
    run(bin_dir / "electra-convert", "--input=pretrained", "--input_format=native", "--output_format=hf",
        "--output_dir=hf")
    assert json.load(open(empty / "hf" / "config.json"))["model_type"] == "electra"

    # --help prints the program's docstring (pip's generated wrapper has none).
    assert "Converts ELECTRA checkpoints" in run(bin_dir / "electra-convert", "--help", check=False).stdout
