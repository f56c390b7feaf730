#!/usr/bin/env bash
# The README's main job on the embedded default registry (./registry.db): build the demo zoo, train the
# generator with the `fast` recipe, answer a dataset no zoo holds, fine-tune from the answer, export to ONNX.
# Each step prints how long it took. Outputs: registry.db, blobs/, registry.faiss and demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
zoo=.venv/bin/igpg-zoo
out=demo-out
task='digits[classes=1,2,3,4][rot=270]'  # four rotated digit classes: in no preset
mkdir -p "$out"

step() {  # step TITLE COMMAND...: run it, then say how long it took
  local title=$1 start=$SECONDS
  shift
  echo "== $title"
  "$@"
  echo "   ($title: $((SECONDS - start)) s)"
}

step "build the demo zoo" $zoo zoo build --preset demo
step "train the generator (fast recipe)" $zoo train --recipe fast
rm -f "$out/mine.npz"
step "write a dataset the zoo never saw" $zoo datasets "$task" --out "$out/mine.npz"
step "which weights should I start from?" $zoo query --data "$out/mine.npz"
step "fine-tune from the answer, random init beside it" $zoo finetune --data "$out/mine.npz" --compare random
id=$($zoo list --kind finetuned --sort id --limit 1 --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
step "export the fine-tuned model #$id to ONNX" $zoo export "$id" --format onnx --out "$out/model.onnx" --overwrite
