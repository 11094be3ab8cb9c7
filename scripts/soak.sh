#!/usr/bin/env bash
# The soak test (not part of CI): continuous ingestion by the release `tix-logs` binary
# for MINUTES (default 30) under random faults, then the conservation oracle.
#
#   scripts/soak.sh [MINUTES]
#
# Builds the release binaries (--locked), starts Garage (scripts/garage.sh; without it the
# S3 lane is skipped and the report says so), and runs testkit's driver `tix-soak`:
# files into tantivy, files into the scripted Elasticsearch node behind a fault proxy, and
# S3 objects through a fault proxy into the same node; proxy cuts and stalls, 429 storms,
# S3 503s and `kill -9` of the ingester at random; RSS and file descriptors sampled every
# 250 ms. The markdown summary goes to stdout and soak-out/report.md, with runs.csv,
# samples.csv and windows.csv beside it.
#
# Environment: TIX_SOAK_RATE (records/s arriving per lane, default 200),
# TIX_SOAK_OBJECT_RECORDS (records per object, default 1000), TIX_SOAK_SEED,
# TIX_SOAK_OUT (default soak-out).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

MINUTES="${1:-30}"
if ! [[ $MINUTES =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "soak.sh: MINUTES must be a number, got '$MINUTES'" >&2
	exit 2
fi
OUT="${TIX_SOAK_OUT:-soak-out}"

cargo build --release --locked -p query-cli --bin tix-logs -p testkit --bin tix-soak

if scripts/garage.sh start >/dev/null; then
	# shellcheck disable=SC1091
	. "$(scripts/garage.sh env)"
else
	echo "soak.sh: Garage did not start: the S3 lane is skipped (the report says so)" >&2
	unset AWS_ENDPOINT_URL
fi

mkdir -p "$OUT"
args=(--binary target/release/tix-logs --minutes "$MINUTES" --out "$OUT")
[[ -n ${TIX_SOAK_RATE:-} ]] && args+=(--rate "$TIX_SOAK_RATE")
[[ -n ${TIX_SOAK_OBJECT_RECORDS:-} ]] && args+=(--object-records "$TIX_SOAK_OBJECT_RECORDS")
[[ -n ${TIX_SOAK_SEED:-} ]] && args+=(--seed "$TIX_SOAK_SEED")
exec target/release/tix-soak "${args[@]}"
