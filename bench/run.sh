#!/usr/bin/env bash
# tix-logs benchmark: ingest throughput against two references, query latency through
# the real CLI against what an analyst would do without us, and peak memory.
#
# Usage:
#   bench/run.sh [N]          N events (default 1000000): ingest + queries, markdown table at the end
#   bench/run.sh rss SIZE     peak RSS while ingesting one gzip object of SIZE uncompressed (64MiB, 1GiB)
#   bench/run.sh s3 SIZE      the same object from Garage (scripts/garage.sh) beside the local file:
#                             throughput of both and peak RSS of the S3 path
#
# Not a test and not run by CI. Everything lands in bench-out/ (git-ignored); generated
# inputs are reused while N and the seed are unchanged (rm -rf bench-out to start over).
# Missing tools are installed on first use: hyperfine and GNU time (apt-get), DuckDB
# (pip), tantivy-cli 0.24 (cargo install, into ${TIX_BENCH_TOOLS:-~/.cache/tix-bench}).
#
# Environment: BENCH_OUT (default bench-out), TIX_BENCH_TOOLS, BENCH_SEED (default 42),
# BENCH_THREADS (indexing threads for all three indexers, default 2), BENCH_ROUNDS (ingest
# runs per indexer, interleaved, the median reported; default 3: on a shared 2-core VM one
# run of the same binary varies by up to 30%).

set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
TOOLS="${TIX_BENCH_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tix-bench}"
SEED="${BENCH_SEED:-42}"
THREADS="${BENCH_THREADS:-2}"
ROUNDS="${BENCH_ROUNDS:-3}"
TIX="$ROOT/target/release/tix-logs"
GEN="$ROOT/target/release/tix-gen"
BARE="$ROOT/target/release/tix-bare-index"
TANTIVY="$TOOLS/bin/tantivy"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------- tools

apt_install() {
    command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available"
    log "installing $1 (apt-get)"
    if [[ ! -f "$OUT/.apt-updated" ]]; then
        apt-get update -qq >/dev/null
        touch "$OUT/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

need_base_tools() {
    [[ -x /usr/bin/time ]] || apt_install time
    command -v python3 >/dev/null || apt_install python3
    command -v gzip >/dev/null || apt_install gzip
}

need_query_tools() {
    command -v hyperfine >/dev/null || apt_install hyperfine
    if ! python3 -c 'import duckdb' 2>/dev/null; then
        log "installing duckdb (pip)"
        python3 -m pip install --quiet duckdb 2>/dev/null ||
            python3 -m pip install --quiet --user duckdb 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages duckdb
    fi
}

need_tantivy_cli() {
    [[ -x "$TANTIVY" ]] && return 0
    log "installing tantivy-cli 0.24 into $TOOLS (takes a few minutes, once)"
    mkdir -p "$TOOLS"
    # Its lock file pins traitobject 0.1.0, which newer compilers reject; fall back to a
    # fresh resolution of the same version when the locked build fails.
    cargo install --locked --quiet tantivy-cli --version 0.24.0 --root "$TOOLS" ||
        cargo install --quiet tantivy-cli --version 0.24.0 --root "$TOOLS"
}

build() {
    log "building release binaries"
    cargo build --release --locked -p query-cli -p fixtures -p bench
    [[ -x "$TIX" && -x "$GEN" && -x "$BARE" ]] || die "release binaries missing after the build"
}

# ----------------------------------------------------------------------- measuring

# timed NAME CMD... : runs CMD under GNU time; leaves "wall user sys rss_kb exit" in
# $OUT/NAME.stats, CMD's stdout in $OUT/NAME.out and its stderr in $OUT/NAME.err.
timed() {
    local name="$1"
    shift
    local t0 t1 code=0
    t0=$(date +%s%N)
    /usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || code=$?
    t1=$(date +%s%N)
    awk -v wall="$(((t1 - t0) / 1000000))" -v code="$code" '
        /User time/ { u = $NF }
        /System time/ { s = $NF }
        /Maximum resident set size/ { r = $NF }
        END { printf "%.3f %s %s %s %s\n", wall / 1000, u, s, r, code }
    ' "$OUT/$name.time" >"$OUT/$name.stats"
    if ((code != 0)); then
        log "$name exited with $code; stderr:"
        tail -n 20 "$OUT/$name.err" >&2
    fi
}

# stat_field NAME INDEX (1 wall, 2 user, 3 sys, 4 rss_kb, 5 exit)
stat_field() { awk -v i="$2" '{ print $i }' "$OUT/$1.stats"; }

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

hyperfine_median_ms() {
    python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$1"
}

# ------------------------------------------------------------------------ inputs

generate() {
    local n="$1" stamp="$OUT/.inputs"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$n $SEED" && -f "$OUT/events.ndjson.gz" ]]; then
        log "reusing $n generated events in $OUT"
        return
    fi
    rm -f "$stamp"
    rm -rf "$OUT/split"
    mkdir -p "$OUT/split"
    log "generating $n events (seed $SEED)"
    "$GEN" --seed "$SEED" --events "$n" --start 2024-02-01T00:00:00Z --days 7 --compress none \
        --out "$OUT/events.ndjson"
    log "compressing: one gzip object, and 8 gzip parts for zcat/DuckDB"
    gzip -6 -c "$OUT/events.ndjson" >"$OUT/events.ndjson.gz"
    # shellcheck disable=SC2016 # $FILE is set by split for each part
    split -n l/8 -d -a 1 --additional-suffix=.ndjson --filter='gzip -6 > "$FILE.gz"' \
        "$OUT/events.ndjson" "$OUT/split/part-"
    echo "$n $SEED" >"$stamp"
}

# ----------------------------------------------------------------------- ingest

ingest_all() {
    local mb_raw records threads_flag=()
    if "$TIX" ingest --help 2>/dev/null | grep -q -- '--threads'; then
        threads_flag=(--threads "$THREADS")
    fi

    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        log "ingest round $round/$ROUNDS: tix-logs"
        rm -rf "$OUT/index" "$OUT/dl"
        timed "ours.$round" "$TIX" ingest --index "$OUT/index" --dead-letter "$OUT/dl" --json \
            "${threads_flag[@]}" "$OUT/events.ndjson.gz"

        log "ingest round $round/$ROUNDS: tantivy-cli index -t $THREADS (decompressed NDJSON on stdin)"
        rm -rf "$OUT/tantivy-cli-index"
        mkdir -p "$OUT/tantivy-cli-index"
        cp "$ROOT/bench/tantivy-cli-meta.json" "$OUT/tantivy-cli-index/meta.json"
        # shellcheck disable=SC2016 # expanded by the inner shell
        timed "tantivy_cli.$round" bash -c '"$0" index -i "$1" -t "$2" < "$3"' \
            "$TANTIVY" "$OUT/tantivy-cli-index" "$THREADS" "$OUT/events.ndjson"

        log "ingest round $round/$ROUNDS: bare tantivy indexer (same schema, no validation/redaction/dedupe)"
        rm -rf "$OUT/bare-index"
        timed "bare.$round" "$BARE" --index "$OUT/bare-index" --threads "$THREADS" "$OUT/events.ndjson.gz"
    done
    # The median run by wall time of each indexer stands for it; every run is in rounds.log.
    local name
    : >"$OUT/rounds.log"
    for name in ours tantivy_cli bare; do
        for ((round = 1; round <= ROUNDS; round++)); do
            printf '%s %s %s\n' "$name" "$round" "$(cat "$OUT/$name.$round.stats")" >>"$OUT/rounds.log"
        done
        round=$(for ((r = 1; r <= ROUNDS; r++)); do echo "$(stat_field "$name.$r" 1) $r"; done |
            sort -n | awk -v m=$(((ROUNDS + 1) / 2)) 'NR == m { print $2 }')
        cp "$OUT/$name.$round.stats" "$OUT/$name.stats"
        cp "$OUT/$name.$round.out" "$OUT/$name.out"
        cp "$OUT/$name.$round.err" "$OUT/$name.err"
    done
    cp "$OUT/ours.out" "$OUT/ours.json"

    RAW_BYTES=$(stat -c %s "$OUT/events.ndjson")
    mb_raw=$(awk -v b="$RAW_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
    records=$(json_field "$OUT/ours.json" records 2>/dev/null || echo "?")
    log "tix-logs summary: $(cat "$OUT/ours.json" 2>/dev/null || echo 'none')"
    INGEST_ROWS=""
    local name label wall user sys rss cpu
    for name in ours tantivy_cli bare; do
        case "$name" in
            ours) label="tix-logs ingest" ;;
            tantivy_cli) label="tantivy-cli index" ;;
            bare) label="bare tantivy (same schema)" ;;
        esac
        wall=$(stat_field "$name" 1)
        user=$(stat_field "$name" 2)
        sys=$(stat_field "$name" 3)
        rss=$(stat_field "$name" 4)
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
        INGEST_ROWS+=$(awk -v l="$label" -v n="$N" -v w="$wall" -v b="$RAW_BYTES" -v c="$cpu" -v r="$rss" \
            'BEGIN { printf "| %s | %.1f | %.0f | %.1f | %.1f | %.1f | %.0f |\n", l, w, n / w, b / 1e6 / w, c, b / 1e6 / c, r / 1024 }')
        INGEST_ROWS+=$'\n'
    done
    local w_ours w_tcli w_bare
    w_ours=$(stat_field ours 1)
    w_tcli=$(stat_field tantivy_cli 1)
    w_bare=$(stat_field bare 1)
    RATIO_TCLI=$(awk -v a="$w_ours" -v b="$w_tcli" 'BEGIN { printf "%.2f", b / a }')
    RATIO_BARE=$(awk -v a="$w_ours" -v b="$w_bare" 'BEGIN { printf "%.2f", b / a }')
    local c_ours c_tcli c_bare
    c_ours=$(awk '{ print $2 + $3 }' "$OUT/ours.stats")
    c_tcli=$(awk '{ print $2 + $3 }' "$OUT/tantivy_cli.stats")
    c_bare=$(awk '{ print $2 + $3 }' "$OUT/bare.stats")
    CPU_TCLI=$(awk -v a="$c_ours" -v b="$c_tcli" 'BEGIN { printf "%.2f", b / a }')
    CPU_BARE=$(awk -v a="$c_ours" -v b="$c_bare" 'BEGIN { printf "%.2f", b / a }')

    echo
    echo "Ingest of $N events ($mb_raw MB of NDJSON; tix-logs counted $records records), $THREADS indexing threads;"
    echo "median of $ROUNDS interleaved runs each (wall s of every run: $(rounds_summary)):"
    echo
    echo "| indexer | wall s | records/s | MB/s (raw JSON) | CPU s (user+sys) | MB per CPU-s | peak RSS MB |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$INGEST_ROWS"
    echo
    echo "Wall-throughput ratio ours / tantivy-cli: ${RATIO_TCLI}x (target >= 1.3x); ours / bare tantivy: ${RATIO_BARE}x (target >= 0.8x)."
    echo "Per CPU-second: ours / tantivy-cli ${CPU_TCLI}x, ours / bare ${CPU_BARE}x (steadier than wall time on a busy machine)."
    # Any failed round invalidates the figures, not only a failed median run: a run that
    # dies early is also the fastest and would distort the median.
    local name code
    for name in ours tantivy_cli bare; do
        for ((round = 1; round <= ROUNDS; round++)); do
            code=$(stat_field "$name.$round" 5)
            if [[ "$code" != 0 ]]; then
                echo
                echo "**$name round $round exited with $code** (see $OUT/$name.$round.err); its figures are not valid."
            fi
        done
    done
}

# rounds_summary: "ours 9.7/10.1/12.5, tantivy_cli ..." from rounds.log.
rounds_summary() {
    awk '{ w[$1] = w[$1] (w[$1] == "" ? "" : "/") $3 } END { printf "ours %s, tantivy-cli %s, bare %s", w["ours"], w["tantivy_cli"], w["bare"] }' "$OUT/rounds.log"
}

# ----------------------------------------------------------------------- queries

pick_needle() {
    local line=$((N / 2))
    ((line >= 1)) || line=1
    sed -n "${line}p" "$OUT/events.ndjson" | grep -o '"booking_id":"BK-[0-9]*-[0-9]*"' | cut -d'"' -f4
}

queries() {
    local needle since=2024-02-03T00:00:00Z until=2024-02-05T00:00:00Z idx="$OUT/index"
    needle=$(pick_needle)
    [[ -n "$needle" ]] || die "could not pick a booking_id from events.ndjson"
    log "needle: booking_id $needle"

    # What an analyst types: DuckDB over the gzip files, from Python.
    cat >"$OUT/duckdb_needle.py" <<'PY'
import sys
import duckdb
glob, needle = sys.argv[1], sys.argv[2]
query = "select count(*) from read_json_auto('%s') where booking_id = ?" % glob.replace("'", "''")
print(duckdb.connect().execute(query, [needle]).fetchone()[0])
PY

    # One sanity pass: every tool must agree on the needle's count.
    local n_grep n_duck n_ours n_count
    n_grep=$(zcat "$OUT"/split/*.ndjson.gz | grep -c "$needle" || true)
    n_duck=$(python3 "$OUT/duckdb_needle.py" "$OUT/split/*.ndjson.gz" "$needle")
    n_ours=$("$TIX" search --index "$idx" "booking_id:$needle" --count 2>/dev/null || echo "error")
    n_count=$("$TIX" search --index "$idx" 'type:booking.cancelled' --since "$since" --until "$until" --count 2>/dev/null || echo "error")
    log "needle hits: zcat|grep $n_grep, duckdb $n_duck, tix-logs $n_ours; cancelled in range: $n_count"

    # -N: no intermediate shell for our commands (a few ms each), so hyperfine does not
    # subtract a shell start-up estimate that is noisier than the command itself.
    local hf=(hyperfine -N --style basic --warmup 3 --min-runs 20)
    local hf_slow=(hyperfine --style basic --warmup 1 --runs 5)
    log "query: needle"
    "${hf[@]}" --export-json "$OUT/q-needle.json" \
        "'$TIX' search --index '$idx' 'booking_id:$needle' --format json" >&2
    log "query: term + time range count"
    "${hf[@]}" --export-json "$OUT/q-count.json" \
        "'$TIX' search --index '$idx' 'type:booking.cancelled' --since $since --until $until --count" >&2
    log "query: terms aggregation"
    "${hf[@]}" --export-json "$OUT/q-agg.json" \
        "'$TIX' search --index '$idx' --agg terms:venue --limit 0" >&2
    log "query: nested aggregation (per venue per day)"
    "${hf[@]}" --export-json "$OUT/q-nested.json" \
        "'$TIX' search --index '$idx' --agg 'terms:venue>date_histogram:ts:1d' --limit 0" >&2
    log "query: the booking report"
    "${hf[@]}" --export-json "$OUT/q-report.json" \
        "'$TIX' report --index '$idx' --format json" >&2
    log "baseline: zcat | grep -c"
    "${hf_slow[@]}" --export-json "$OUT/q-grep.json" \
        "zcat '$OUT'/split/*.ndjson.gz | grep -c '$needle'" >&2
    log "baseline: DuckDB read_json_auto over the gzip parts"
    "${hf_slow[@]}" --export-json "$OUT/q-duckdb.json" \
        "python3 '$OUT/duckdb_needle.py' '$OUT/split/*.ndjson.gz' '$needle'" >&2

    Q_NEEDLE=$(hyperfine_median_ms "$OUT/q-needle.json")
    Q_COUNT=$(hyperfine_median_ms "$OUT/q-count.json")
    Q_AGG=$(hyperfine_median_ms "$OUT/q-agg.json")
    Q_NESTED=$(hyperfine_median_ms "$OUT/q-nested.json")
    Q_REPORT=$(hyperfine_median_ms "$OUT/q-report.json")
    Q_GREP=$(hyperfine_median_ms "$OUT/q-grep.json")
    Q_DUCK=$(hyperfine_median_ms "$OUT/q-duckdb.json")
    X_GREP=$(awk -v a="$Q_NEEDLE" -v b="$Q_GREP" 'BEGIN { printf "%.0f", b / a }')
    X_DUCK=$(awk -v a="$Q_NEEDLE" -v b="$Q_DUCK" 'BEGIN { printf "%.0f", b / a }')

    echo
    echo "Queries over $N events through the CLI, process start included (hyperfine medians):"
    echo
    echo "| query | median ms | target |"
    echo "|---|---:|---|"
    echo "| tix-logs needle \`booking_id:$needle\` --format json | $Q_NEEDLE | < 50 |"
    echo "| tix-logs \`type:booking.cancelled\` --since/--until --count | $Q_COUNT | < 50 |"
    echo "| tix-logs --agg terms:venue --limit 0 | $Q_AGG | < 300 |"
    echo "| tix-logs --agg 'terms:venue>date_histogram:ts:1d' --limit 0 | $Q_NESTED | < 300 |"
    echo "| tix-logs report --format json (every booking) | $Q_REPORT | < 2000 |"
    echo "| zcat 8 gzip parts \\| grep -c needle | $Q_GREP | ours >= 100x faster: ${X_GREP}x |"
    echo "| DuckDB read_json_auto over 8 gzip parts, booking_id = needle | $Q_DUCK | ours >= 10x faster: ${X_DUCK}x |"
}

# -------------------------------------------------------------------------- modes

full() {
    N="${1:-1000000}"
    [[ "$N" =~ ^[0-9]+$ ]] || { usage; exit 2; }
    mkdir -p "$OUT"
    need_base_tools
    need_query_tools
    need_tantivy_cli
    build
    generate "$N"
    # Each step prints its part of the report on stdout (progress goes to stderr); the
    # parts are kept in bench-out/ and printed together at the end for the README.
    ingest_all >"$OUT/report-ingest.md"
    queries >"$OUT/report-queries.md"
    {
        echo "## Benchmark ($(nproc) cores, $(date -u +%Y-%m-%d), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none), N=$N, seed $SEED)"
        cat "$OUT/report-ingest.md" "$OUT/report-queries.md"
    } >"$OUT/report.md"
    echo
    cat "$OUT/report.md"
}

# prepare_big_object SIZE: the preamble of the one-object modes. Checks SIZE, builds, and
# sets OBJ to one gzip object of SIZE uncompressed (reused while it exists; its generator
# stats are in $OUT/rss-SIZE.gen.json).
prepare_big_object() {
    local size="${1:-}"
    [[ -n "$size" ]] || { usage; exit 2; }
    mkdir -p "$OUT"
    need_base_tools
    build
    OBJ="$OUT/rss-$size.ndjson.gz"
    if [[ ! -f "$OBJ" ]]; then
        log "generating one gzip object of $size uncompressed"
        "$GEN" --seed "$SEED" --bytes "$size" --compress gzip --out "$OBJ.tmp" --stats-json \
            2>"$OUT/rss-$size.gen.json"
        mv "$OBJ.tmp" "$OBJ"
    fi
}

rss() {
    prepare_big_object "${1:-}"
    local size="$1" obj="$OBJ"
    log "ingesting $obj"
    rm -rf "$OUT/rss-index" "$OUT/rss-dl"
    timed "rss-$size" "$TIX" ingest --index "$OUT/rss-index" --dead-letter "$OUT/rss-dl" --json "$obj"
    local rss_kb wall
    rss_kb=$(stat_field "rss-$size" 4)
    wall=$(stat_field "rss-$size" 1)
    echo
    echo "| object | compressed MB | records | wall s | peak RSS MB | target |"
    echo "|---|---:|---:|---:|---:|---|"
    awk -v s="$size" -v c="$(stat -c %s "$obj")" -v r="$(json_field "$OUT/rss-$size.out" records 2>/dev/null || echo '?')" \
        -v w="$wall" -v k="$rss_kb" \
        'BEGIN { printf "| %s gzip | %.1f | %s | %.1f | %.0f | <= 256 MB |\n", s, c / 1e6, r, w, k / 1024 }'
}

# s3 SIZE: one gzip object of SIZE uncompressed, ingested from Garage and from the
# local file; prints both throughputs, their ratio (target >= 0.8) and peak RSS.
s3() {
    prepare_big_object "${1:-}"
    local size="$1" obj="$OBJ"
    "$ROOT/scripts/garage.sh" start >/dev/null
    # shellcheck disable=SC1090
    . "$("$ROOT/scripts/garage.sh" env)"
    python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet boto3
    local key
    key="bench/$size/$(basename "$obj")"
    log "uploading $obj to s3://$TIX_S3_TEST_BUCKET/$key"
    python3 - "$obj" "$TIX_S3_TEST_BUCKET" "$key" <<'PY'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
s3.upload_file(sys.argv[1], sys.argv[2], sys.argv[3])
PY
    local name
    for name in s3 local; do
        rm -rf "$OUT/$name-index" "$OUT/$name-dl"
    done
    log "ingesting from S3"
    timed "s3-$size" "$TIX" ingest --index "$OUT/s3-index" --dead-letter "$OUT/s3-dl" --json "s3://$TIX_S3_TEST_BUCKET/$key"
    log "ingesting the local file"
    timed "local-$size" "$TIX" ingest --index "$OUT/local-index" --dead-letter "$OUT/local-dl" --json "$obj"
    echo
    echo "| source | records | wall s | MB/s (raw JSON) | peak RSS MB |"
    echo "|---|---:|---:|---:|---:|"
    local raw
    raw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$OUT/rss-$size.gen.json" 2>/dev/null || echo 0)
    for name in s3 local; do
        awk -v n="$name" -v r="$(json_field "$OUT/$name-$size.out" records)" -v w="$(stat_field "$name-$size" 1)" \
            -v k="$(stat_field "$name-$size" 4)" -v b="$raw" \
            'BEGIN { printf "| %s | %s | %.1f | %.1f | %.0f |\n", n, r, w, b / 1e6 / w, k / 1024 }'
    done
    awk -v s="$(stat_field "s3-$size" 1)" -v l="$(stat_field "local-$size" 1)" \
        'BEGIN { printf "\nS3 throughput / local throughput: %.2f (target >= 0.80)\n", l / s }'
}

case "${1:-}" in
    -h | --help) usage ;;
    rss) shift; rss "$@" ;;
    s3) shift; s3 "$@" ;;
    *) full "$@" ;;
esac
