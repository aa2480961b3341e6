#!/usr/bin/env bash
# Regenerate the bundled example pages from the committed PTB-XL sample (test split).
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/pages
rm -rf "$out"
r() { python -m trainer render --data examples/ptbxl-sample --split test --count 1 --out "$out" "$@"; }
r --layout 3x4+1 --style clean --dpi 200 --seed 1
r --layout 3x4+1 --style scan --dpi 150 --seed 5
r --layout 3x4+1 --style photo --dpi 150 --seed 8
r --layout 6x2 --style scan --dpi 120 --seed 8
r --layout strip --style clean --dpi 200 --seed 20
