#!/usr/bin/env bash
# Fuzzes every target in turn for SECONDS each (default 600), growing
# fuzz/corpus/<target>/ from fuzz/seeds/<target>/; crashes land in
# fuzz/artifacts/<target>/. Prints each target's executions at the end.
#   bash fuzz/run_all.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(idx checkpoint trace_inputs results task_list shard arch conv_arch conv_checkpoint cifar celeba_lists)
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  cargo "${toolchain[@]}" fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 \
    >"logs/$target.log" 2>&1 || echo "$target: stopped with a finding, see fuzz/logs/$target.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" | grep -o '[0-9]*$' || echo '?')
  echo "$target: $seconds s, $runs executions, corpus $(ls "corpus/$target" | wc -l) inputs"
done
