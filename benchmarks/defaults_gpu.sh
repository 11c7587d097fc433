#!/usr/bin/env bash
# defaults.py's heaviest rows on a lent GPU machine (benchmarks/README.md, "defaults.py"):
# the 60,000-image sets' three tasks and the 5,000-image one-class rows, one process per row,
# all at once (each is bound by Python's per-step overhead, not by the GPU).
#
# The machine lacks anndata and its dependencies, and ../shared: carry them, prepared here as
#   .whl      anndata array-api-compat legacy-api-wrap natsort scverse-misc zarr donfig
#             google-crc32c numcodecs (cp312 wheels, the versions of .venv)
#   .gpudata  copies of ../shared/data/{mnist,fashion_mnist}
# (both ignored through .git/info/exclude), then: run `bash benchmarks/defaults_gpu.sh`.
# Results: $OUT/rows.log (every row as defaults.py prints it) and $OUT/rows.tgz (the JSON).
set -u
OUT=${OUT:-/tmp/defaults_gpu}
LIMIT=${LIMIT:-420}  # seconds per row; a row past it is lost, the others are kept
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2  # 8 rows x 2 = 16 cores
mkdir -p ../shared/data
for d in .gpudata/*; do ln -sfn "$PWD/$d" ../shared/data/; done
date -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
# A small row first: a failure here costs seconds, not the run.
python3 benchmarks/defaults.py --datasets wine --tasks anomaly --seeds 0 --device cuda || exit 1

rows=/tmp/defaults_gpu_rows
mkdir -p $rows
row() {  # NAME ARGS...: one row of defaults.py in the background
    local name=$1
    shift
    timeout "$LIMIT" python3 benchmarks/defaults.py --device cuda --threads 2 --json "$rows/$name.json" "$@" \
        > "$rows/$name.log" 2>&1 &
}
for set in mnist fashion; do
    for task in knn anomaly impute; do
        row "${set}_60000_$task" --datasets "${set}_60000" --tasks "$task"
    done
    row "${set}_5000_anomaly" --datasets "${set}_5000" --tasks anomaly
done
start=$SECONDS
wait
echo "rows took $((SECONDS - start)) s"
cat $rows/*.log | tee "$OUT/rows.log"
tar czf "$OUT/rows.tgz" -C $rows .
