#!/usr/bin/env bash
# Prints the flow-table lookup results under target/criterion (benches/benches/flow.rs) as a
# markdown table: median ns per key (criterion's median estimate ÷ the 64 keys of an
# iteration), one row per table size, hit and miss; and hashbrown ÷ flow table (burst) ratios.
# With a second argument, also copies each benchmark's estimates.json and benchmark.json there
# (bench-out/criterion-flow/<size>/<bench>/<hit|miss>/).
# Usage: benches/flow-table.sh [CRITERION_DIR [COPY_TO]]   (needs jq)
set -euo pipefail
dir=${1:-"${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/criterion"}
copy=${2:-}
sizes=(1k 100k 393k 1M 4M)
benches=(xskd_burst64 xskd_burst64_4k xskd_single hashbrown)

# ns per key of bench $2 ($3 = hit|miss) at size $1 (empty when it has not been run).
per_key() {
    local d="$dir/flow_lookup_$1/$2/$3/new"
    [[ -f $d/estimates.json && -f $d/benchmark.json ]] || return 0
    local med n
    med=$(jq -r '.median.point_estimate' "$d/estimates.json")
    n=$(jq -r '.throughput.Elements' "$d/benchmark.json")
    awk -v m="$med" -v n="$n" 'BEGIN { printf "%.1f", m / n }'
}

ratio() {
    [[ -n $1 && -n $2 ]] || return 0
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'
}

for what in hit miss; do
    printf '\n| ns/key (median), %s | burst 64 | burst 64, 4 KiB pages | single | hashbrown | hashbrown ÷ burst |\n' "$what"
    printf '|---|---:|---:|---:|---:|---:|\n'
    for s in "${sizes[@]}"; do
        b=$(per_key "$s" xskd_burst64 "$what")
        b4=$(per_key "$s" xskd_burst64_4k "$what")
        one=$(per_key "$s" xskd_single "$what")
        hb=$(per_key "$s" hashbrown "$what")
        printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$b" "$b4" "$one" "$hb" "$(ratio "$hb" "$b")"
    done
done

if [[ -n $copy ]]; then
    for s in "${sizes[@]}"; do
        for b in "${benches[@]}"; do
            for what in hit miss; do
                d="$dir/flow_lookup_$s/$b/$what/new"
                [[ -d $d ]] || continue
                mkdir -p "$copy/$s/$b/$what"
                cp "$d/estimates.json" "$d/benchmark.json" "$copy/$s/$b/$what/"
            done
        done
    done
fi
