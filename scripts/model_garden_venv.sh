#!/usr/bin/env bash
# Builds .venv/mg: TF Model Garden (tf-models-official 2.20) for the benchmarks' peer column only.
# It pins TensorFlow 2.20 and uses tf-keras (Keras 2), so it cannot share .venv (TF 2.21, Keras 3). Its full
# dependency list pulls in packages the ELECTRA modules never import, so it goes in with --no-deps and only
# what official.nlp's encoders, models and optimizers import is added (gin-config, pyyaml, scipy).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/mg/bin/python ] || "$PYTHON" -m venv .venv/mg
.venv/mg/bin/python -m pip install --quiet "tensorflow==2.20.*" "tensorflow-text==2.20.*" "tf-keras==2.20.*" \
  gin-config pyyaml scipy
.venv/mg/bin/python -m pip install --quiet --no-deps "tf-models-official==2.20.0"
TF_USE_LEGACY_KERAS=1 .venv/mg/bin/python -c "from official.nlp.modeling import models; print('Model Garden ready')"
