#!/usr/bin/env bash
# The regression example end to end on this machine, with mlpipe's own drivers and launcher on local paths
# (no AWS, no moto): generate -> clean (Glue driver) -> features (EMR driver, training and inference) ->
# train, evaluate, infer (mlpipe_batch.run) -> baselines. Run from the repository root:
#
#     examples/regression/run_local.sh [OUT_DIR] [ROWS] [HYPERPARAMETERS_JSON] [NPROC]
#
# OUT_DIR defaults to /tmp/mlpipe-regression, ROWS to generate.py's default, NPROC (ranks of the training
# job, one node) to 1. The last lines are the figures of the README.
set -euo pipefail

out=$(realpath -m "${1:-/tmp/mlpipe-regression}")
rows=${2:-}
hp=${3:-"{}"}
nproc=${4:-1}
here=examples/regression
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD/batch_containers/src${PYTHONPATH:+:$PYTHONPATH}

mkdir -p "$out"
"$py" $here/generate.py --out "$out" --seed 7 ${rows:+--rows "$rows"}
"$py" glue_jobs/mlpipe_clean.py --input "$out/raw" --output "$out/curated" --quarantine "$out/quarantine" \
  --report "$out/clean_report.json" --extra-py-files $here --workload-module clean --dedupe-key reading_id \
  --partition-column month --format csv --csv-header true
"$py" emr_steps/build_features.py --input "$out/curated" --output "$out/features" \
  --manifest "$out/features/manifest.json" --workload-module features --workload-path $here \
  --id-column reading_id --label-column log_load --split-by ratio
# Inference data: the curated readings again (the platform feeds new ones), without the label.
"$py" emr_steps/inference_features.py --input "$out/curated" --training-manifest "$out/features/manifest.json" \
  --output "$out/features/inference" --manifest "$out/features/inference_manifest.json" \
  --workload-module features --workload-path $here

"$py" -c "from mlpipe import code_package; import sys; p = code_package.build('$here'); \
open(sys.argv[1], 'wb').write(p.data); print(p.sha256, file=open(sys.argv[2], 'w'))" "$out/code.zip" "$out/code.sha256"
sha=$(cat "$out/code.sha256")
rm -rf "$out/train" "$out/evaluate" "$out/infer" "$out/checkpoint"
launch() {
  MLPIPE_NPROC_PER_NODE=$1 "$py" -m mlpipe_batch.run --code "$out/code.zip" --code-sha256 "$sha" "${@:2}"
}
launch "$nproc" --entrypoint train.py --input "$out/features/manifest.json" --output "$out/train" \
  --checkpoint "$out/checkpoint" --hyperparameters "$hp"
launch 1 --entrypoint evaluate.py --input "$out/features/manifest.json" --model "$out/train/model" \
  --output "$out/evaluate"
launch 1 --entrypoint infer.py --input "$out/features/inference_manifest.json" --model "$out/train/model" \
  --output "$out/infer"

echo "train:    $(tr -d '\n ' <"$out/train/metrics.json" | cut -c1-200)"
echo "evaluate: $(tr -d '\n ' <"$out/evaluate/metrics.json")"
echo "infer:    $(tr -d '\n ' <"$out/infer/metrics.json")"
"$py" $here/baselines.py --manifest "$out/features/manifest.json" --curated "$out/curated" \
  --truth "$out/truth.json" --evaluation "$out/evaluate/metrics.json" --json "$out/figures.json"
