#!/usr/bin/env bash
# Creates benchmarks/.venv: aisec and the peer libraries it is measured against. The peers are never
# aisec dependencies; they live only here.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv benchmarks/.venv
pip=benchmarks/.venv/bin/pip
$pip install -q torch==2.13.0                      # the CPU wheel first: nothing may pull a CUDA torch
$pip install -q -e ".[dev]"
$pip install -q adversarial-robustness-toolbox multiprocess   # ART (its AutoAttack needs multiprocess)
$pip install -q --no-deps torchattacks opacus      # their declared dependencies would pull torchvision
$pip install -q tqdm requests opt-einsum           # what torchattacks and opacus need besides torch
