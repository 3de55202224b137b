#!/usr/bin/env bash
# The GPU check in one short window (see benchmarks/gpu_check.py and docs/benchmarks.md, "GPU check"):
#   bash benchmarks/gpu_check.sh [OUT] [more gpu_check.py options, e.g. --max-seconds 300]
# The script keeps itself within --max-seconds (default 480) section by section; the outer
# timeout is a backstop that still leaves the JSON of every finished section in OUT.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-gpu-check}"
shift $(( $# > 0 ? 1 : 0 ))
exec timeout --kill-after=15 570 python "$here/gpu_check.py" --out "$out" "$@"
