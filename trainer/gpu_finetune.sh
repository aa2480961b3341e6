#!/bin/bash
# One budgeted fine-tune on a borrowed GPU machine that has torch, OpenCV and SciPy but neither
# the data set nor wfdb: the signals travel packed (`python -m trainer pack --out gpu/signals.npz`)
# and the starting weights as a checkpoint. Run from the repository root:
#
#   INIT=gpu/init.pt OUT_DIR=out MINUTES=7 LR=1e-3 SEED=2 bash trainer/gpu_finetune.sh
#
# From the shipped model: `python -m trainer from-onnx --out gpu/init.pt` and FREEZE_BN=true
# (its batch norms are folded); FOREIGN=0.5 draws half the pages in other printers' conventions;
# STYLES=clean,scan,photo,rough,rough weights the styles (name one twice to draw it twice as
# often); KEEP=true keeps every evaluation's weights (step<N>.pt) to choose among afterwards;
# BARS=0 draws the foreign pages without separator bars (digitize paints bars out before
# reading). gpu/ is git-ignored: name it in the device tool's carry.
#
# The learning rate follows the wall clock (--schedule=minutes), so the cosine ends with the
# budget whatever the machine's speed; every CPU core but one renders strips. best.pt is written
# only by weights that beat INIT on the run's validation strips (val split).
set -u
export PYTHONUNBUFFERED=1
DATA=${DATA:-gpu/signals.npz}
INIT=${INIT:?INIT=checkpoint to start from}
OUT_DIR=${OUT_DIR:?OUT_DIR=where the checkpoints go}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, cv2, scipy; print('torch', torch.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"
W=$(( $(nproc) - 1 ))
echo "render workers: $W"
python3 -m trainer train --data="$DATA" --init="$INIT" --out="$OUT_DIR" \
  --device=cuda --workers=$W --threads=1 --batch_size=64 --lr=${LR:-1e-3} \
  --warmup_steps=${WARMUP:-100} --schedule=minutes --max_minutes=${MINUTES:-7} \
  --max_steps=1000000 --eval_every=${EVAL_EVERY:-500} --patience=100 --seed=${SEED:-2} --val_pages=48 \
  --strip_layout_share=0.3 --page_layouts=3x4,3x4+1,3x4+2,3x4+3,6x2,6x1,6x1,12x1,12x1 \
  --foreign=${FOREIGN:-0} --foreign_bars=${BARS:-0.7} --freeze_bn=${FREEZE_BN:-false} --styles=${STYLES:-clean,scan,photo} \
  --keep_evals=${KEEP:-false}
