#!/usr/bin/env bash
# The cluster test (§6): brings up a one-node SLURM cluster on this
# machine (tests/slurm/cluster.sh; installs Debian's SLURM and munge when
# absent, so it needs root and apt) and runs comod on it as a user would:
#   1. the README's cluster example, word for word (a small plan through
#      COMOD_TASKS, COMOD_REPEATS, COMOD_SWEEP_OPTIONS), its merge equal to
#      a single-process sweep apart from wall_s, threads from
#      SLURM_CPUS_PER_TASK;
#   2. one element killed while it runs: the merge refused as partial,
#      the element resubmitted alone, the merge equal to a single process;
#   3. a 1-based array (--array=1-8) and an id outside the plan;
#   4. `comod report --smoke --shards 2` as an array, joined by a plain
#      report: its runs equal a single-process report's;
#   5. a multi-task sweep as an array, merged, equal to a single process.
# Writes results/ in the clone (refuses to start if one exists) and
# removes it; stops every daemon it started, by pid.
#   bash tests/slurm/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$SECONDS
if [ -e results ]; then
  echo "tests/slurm/run.sh: $root/results exists; move it away first (the example writes there)" >&2
  exit 1
fi
# shellcheck source=tests/slurm/cluster.sh
source tests/slurm/cluster.sh
cluster_install
work=$(mktemp -d)
finish() {
  local status=$?
  cluster_down
  if [ "$status" != 0 ]; then
    echo "--- slurm test failed; job outputs and daemon logs:" >&2
    tail -n 30 "$root"/results/slurm-*.out "$work"/*.out "$work"/cluster/log/*.log 2>/dev/null >&2 || true
  fi
  rm -rf "$root/results" "$work"
}
trap finish EXIT
cluster_up "$work/cluster"
echo "slurm: $(sinfo --version), one node with $(nproc) CPUs, up in $((SECONDS - start)) s"
cargo build --release --quiet
export PATH="$root/target/release:$PATH"

# same_runs A B: the two results files hold the same records, apart from wall_s.
same_runs() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def runs(path):
    records = [json.loads(line) for line in open(path)]
    for record in records:
        record.pop("wall_s")
    return records
a, b = runs(sys.argv[1]), runs(sys.argv[2])
if a != b:
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ ({len(a)} and {len(b)} records)")
print(f"  {len(a)} runs, equal to the single-process file apart from wall_s")
PY
}

# expect_failure NEEDLE COMMAND...: the command fails, saying NEEDLE.
expect_failure() {
  local needle=$1 out
  shift
  if out=$("$@" 2>&1); then
    echo "expected a failure of: $*" >&2
    return 1
  fi
  if ! grep -qF -- "$needle" <<<"$out"; then
    echo "expected '$needle' from: $*; got: $out" >&2
    return 1
  fi
  echo "  refused: $out"
}

small="--batches 12 --test-composites 100 --samples 40"

echo "1. the README's cluster example"
export COMOD_TASKS=1-7@0,2-5@3,0-9@1,4-6@2 COMOD_REPEATS=2 COMOD_SWEEP_OPTIONS=$small
awk '/<!-- cluster-example -->/ { on = 1; next } on && /^```sh/ { next } on && /^```/ { exit } on' README.md >"$work/example.sh"
[ -s "$work/example.sh" ] || { echo "no cluster example in README.md" >&2; exit 1; }
bash -euo pipefail "$work/example.sh"
wait_for_jobs
[ -s results/merged.jsonl ] || { echo "the merge job wrote nothing" >&2; exit 1; }
# shellcheck disable=SC2086
comod sweep --checkpoint results/ck.safetensors --tasks "$COMOD_TASKS" --repeats 2 $small \
  --out "$work/single.jsonl" >/dev/null
same_runs results/merged.jsonl "$work/single.jsonl"
grep -q "(2 threads" results/slurm-*_0.out
[ -s results/summary.md ]

echo "2. an element killed while it runs, then resubmitted alone"
rm -f results/shard-*.jsonl results/merged.jsonl
# Runs of 1000 updates, so that an element runs for seconds on any CPU
# (with the default 250, one of 8 runs ended within a second on a 2-core
# AMD EPYC Zen 5, before it could be killed).
long="--batches 1000"
export COMOD_TASKS=0-1@0,2-3@1,4-5@2,6-7@3,0-2@1,1-3@2,2-4@3,3-5@0 COMOD_REPEATS=2 COMOD_SWEEP_OPTIONS=$long
array=$(sbatch --parsable examples/slurm/sweep.sbatch)
until squeue -h -j "${array}_5" -o '%T' 2>/dev/null | grep -qx RUNNING; do
  if [ -z "$(squeue -h -j "${array}_5" 2>/dev/null)" ]; then
    echo "element 5 ended before it could be killed" >&2
    exit 1
  fi
  sleep 0.1
done
sleep 1
scancel "${array}_5"
wait_for_jobs
if grep -qF "GFLOP/s = " results/slurm-"${array}"_5.out 2>/dev/null; then
  echo "element 5 ended before it was killed: $(cat results/slurm-"${array}"_5.out)" >&2
  exit 1
fi
expect_failure "a partial result" comod merge "$work/partial.jsonl" results/shard-*.jsonl
[ ! -e "$work/partial.jsonl" ]
sbatch --wait --array=5 examples/slurm/sweep.sbatch >/dev/null
comod merge results/merged.jsonl results/shard-*.jsonl
# shellcheck disable=SC2086
comod sweep --checkpoint results/ck.safetensors --tasks "$COMOD_TASKS" --repeats 2 $long \
  --out "$work/single-2.jsonl" >/dev/null
same_runs results/merged.jsonl "$work/single-2.jsonl"

echo "3. a 1-based array, one CPU per element, and an id outside the plan"
rm -f results/shard-*.jsonl results/merged.jsonl
export COMOD_TASKS=1-7@0,2-5@3,0-9@1,4-6@2 COMOD_REPEATS=2 COMOD_SWEEP_OPTIONS=$small
sbatch --wait --array=1-8 --cpus-per-task=1 examples/slurm/sweep.sbatch >/dev/null
comod merge results/merged.jsonl results/shard-*.jsonl
same_runs results/merged.jsonl "$work/single.jsonl"
grep -q "(1 threads" results/slurm-*_8.out
if sbatch --wait --array=9 --output="$work/outside.out" examples/slurm/sweep.sbatch >/dev/null 2>&1; then
  echo "array id 9 of 8 shards ran" >&2
  exit 1
fi
grep -q "outside the plan of 8 shards" "$work/outside.out"
echo "  refused: $(cat "$work/outside.out")"

echo "4. a sharded report as an array, joined by a plain report"
sbatch --wait --array=0-1 --cpus-per-task=1 --output="$work/report-%a.out" \
  --wrap "comod report --smoke --shards 2 --out $work/report" >/dev/null
# The elements started together: one pretrained the base network, the
# other waited for it and reused it.
reused=$(cat "$work"/report-*.out | grep -c "reusing $work/report/pretrained.safetensors" || true)
if [ "$reused" != 1 ]; then
  echo "the base network was pretrained by $((2 - reused)) elements, not 1" >&2
  exit 1
fi
comod report --smoke --out "$work/report" >/dev/null
comod report --smoke --out "$work/report-single" >/dev/null
for file in "$work"/report-single/runs/smoke/*.jsonl; do
  same_runs "$work/report/runs/smoke/$(basename "$file")" "$file"
done

echo "5. a multi-task sweep as an array"
comod multitask pretrain --out "$work/mt/ck.safetensors" --epochs 2 >/dev/null
mt="multitask sweep --checkpoint $work/mt/ck.safetensors --tasks prime@0,loop@3 --repeats 2 $small"
sbatch --wait --array=0-1 --cpus-per-task=1 --output="$work/mt-%a.out" \
  --wrap "comod $mt --shards 2 --out '$work/mt/shard-{shard}.jsonl'" >/dev/null
comod merge "$work/mt/merged.jsonl" "$work"/mt/shard-*.jsonl
# shellcheck disable=SC2086
comod $mt --out "$work/mt/single.jsonl" >/dev/null
same_runs "$work/mt/merged.jsonl" "$work/mt/single.jsonl"

echo "slurm test passed in $((SECONDS - start)) s"
