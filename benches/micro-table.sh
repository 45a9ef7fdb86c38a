#!/usr/bin/env bash
# Prints the criterion micro-benchmark results under target/criterion as markdown tables:
# median ns per frame (criterion's median estimate ÷ the benchmark's Throughput::Elements), one
# row per benchmark group, one column per burst size; then the Vec-baseline ÷ pool ratios.
# Usage: benches/micro-table.sh [CRITERION_DIR]   (needs jq)
set -euo pipefail
dir=${1:-"${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/criterion"}
bursts=(8 16 32 64 128 256)

# ns per frame of group $1 at burst $2 (empty when that benchmark has not been run).
per_frame() {
    local d="$dir/$1/$2/new"
    [[ -f $d/estimates.json && -f $d/benchmark.json ]] || return 0
    local med n
    med=$(jq -r '.median.point_estimate' "$d/estimates.json")
    n=$(jq -r '.throughput.Elements' "$d/benchmark.json")
    awk -v m="$med" -v n="$n" 'BEGIN { printf "%.2f", m / n }'
}

header() {
    printf '| %s |' "$1"
    for b in "${bursts[@]}"; do printf ' %s |' "$b"; done
    printf '\n|---|'
    for _ in "${bursts[@]}"; do printf -- '---:|'; done
    printf '\n'
}

groups=$(find "$dir" -mindepth 1 -maxdepth 1 -type d ! -name report -printf '%f\n' | sort)
header "ns/frame (median) \\ burst"
for g in $groups; do
    printf '| `%s` |' "$g"
    for b in "${bursts[@]}"; do printf ' %s |' "$(per_frame "$g" "$b")"; done
    printf '\n'
done

if [[ -d $dir/pool_vec_baseline && -d $dir/pool_hot_cache ]]; then
    printf '\n'
    header "ratio (Vec ÷ pool) \\ burst"
    for pair in pool_vec_baseline:pool_hot_cache pool_vec_immediate:pool_hot_cache \
        pool_vec_baseline:pool_shared_list pool_vec_immediate:pool_shared_list; do
        v=${pair%%:*} p=${pair##*:}
        [[ -d $dir/$v && -d $dir/$p ]] || continue
        printf '| `%s` ÷ `%s` |' "$v" "$p"
        for b in "${bursts[@]}"; do
            a=$(per_frame "$v" "$b") c=$(per_frame "$p" "$b")
            if [[ -n $a && -n $c ]]; then
                awk -v a="$a" -v c="$c" 'BEGIN { printf " %.1f× |", a / c }'
            else
                printf '  |'
            fi
        done
        printf '\n'
    done
fi
