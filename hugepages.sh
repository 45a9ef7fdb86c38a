#!/usr/bin/env bash
# hugepages.sh — reserve hugepages for xskd's UMEM (and dpdk-testpmd), idempotently.
#
#   ./hugepages.sh [N]          ensure at least N free-or-reserved 2 MiB pages (default 256),
#                               mount hugetlbfs (pagesize=2M) at /dev/hugepages if nothing is
#                               mounted there, print the state. Never lowers a reservation.
#   ./hugepages.sh --check [N]  change nothing; exit 1 if fewer than N 2 MiB pages are free.
#   ./hugepages.sh --1g N       also ensure N 1 GiB pages (where the CPU supports them).
#   ./hugepages.sh --help
#
# xskd falls back to normal pages (with a warning) when no hugepages are reserved, so this
# script is a performance step, not a requirement. Run as root.
set -euo pipefail

SYS2M=/sys/kernel/mm/hugepages/hugepages-2048kB
SYS1G=/sys/kernel/mm/hugepages/hugepages-1048576kB
MNT=/dev/hugepages

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

free2m() { cat "$SYS2M/free_hugepages"; }
total2m() { cat "$SYS2M/nr_hugepages"; }

show() {
    grep -E '^(HugePages_Total|HugePages_Free|HugePages_Rsvd|Hugepagesize)' /proc/meminfo
    if [ -d "$SYS1G" ]; then
        echo "1G pages: total $(cat "$SYS1G/nr_hugepages") free $(cat "$SYS1G/free_hugepages")"
    fi
    if mountpoint -q "$MNT" 2>/dev/null; then
        echo "hugetlbfs mounted at $MNT"
    fi
}

check() {
    local want=$1
    if [ ! -d "$SYS2M" ]; then
        echo "hugepages.sh: this kernel has no 2 MiB hugepages" >&2
        return 1
    fi
    local free
    free=$(free2m)
    if [ "$free" -lt "$want" ]; then
        echo "hugepages.sh: only $free free 2 MiB hugepages, need $want (run: sudo ./hugepages.sh $want)" >&2
        return 1
    fi
    echo "hugepages.sh: $free free 2 MiB hugepages (>= $want)"
}

reserve2m() {
    local want=$1
    [ -d "$SYS2M" ] || { echo "hugepages.sh: no 2 MiB hugepage support" >&2; exit 1; }
    local total free used target
    total=$(total2m)
    free=$(free2m)
    used=$((total - free))
    target=$((used + want))
    if [ "$target" -gt "$total" ]; then
        echo "$target" > "$SYS2M/nr_hugepages"
        total=$(total2m)
        if [ "$total" -lt "$target" ]; then
            echo "hugepages.sh: asked for $target 2 MiB pages, kernel gave $total (memory fragmented?)" >&2
        fi
    fi
}

reserve1g() {
    local want=$1
    [ -d "$SYS1G" ] || { echo "hugepages.sh: no 1 GiB hugepage support on this CPU/kernel" >&2; return 1; }
    local total
    total=$(cat "$SYS1G/nr_hugepages")
    if [ "$total" -lt "$want" ]; then
        echo "$want" > "$SYS1G/nr_hugepages" || true
    fi
}

mount_fs() {
    if ! mountpoint -q "$MNT" 2>/dev/null; then
        mkdir -p "$MNT"
        mount -t hugetlbfs -o pagesize=2M nodev "$MNT"
    fi
}

N=256
ONEG=0
MODE=reserve
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --check) MODE=check ;;
        --1g) shift; ONEG=${1:?--1g needs a count} ;;
        ''|*[!0-9]*) echo "hugepages.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
        *) N=$1 ;;
    esac
    shift
done

if [ "$MODE" = check ]; then
    check "$N"
    exit $?
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "hugepages.sh: must run as root to reserve hugepages" >&2
    exit 1
fi
reserve2m "$N"
if [ "$ONEG" -gt 0 ]; then reserve1g "$ONEG" || true; fi
mount_fs
show
check "$N"
