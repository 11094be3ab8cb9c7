#!/usr/bin/env bash
# Fuzzing with cargo fuzz (libFuzzer) on the parsers that take untrusted bytes.
#
#   scripts/fuzz.sh smoke [SECONDS]        every target for SECONDS (default 20): what CI runs
#   scripts/fuzz.sh run TARGET [SECONDS]   one target (default 600 s), e.g. object_reader
#   scripts/fuzz.sh list
#
# Targets (fuzz/fuzz_targets/): trigger_event (S3/SQS/SNS/EventBridge parser), object_key
# (key decoder), object_reader (decompress + frame + validate + redact), validate_redact,
# bulk_response (the Elasticsearch _bulk classifier). Corpora are seeded from the
# committed fixtures into target/fuzz-corpus/ on every run; a crash leaves its input in
# fuzz/artifacts/TARGET/ — turn it into a regression test before fixing it.
#
# The machine has only the stable toolchain: RUSTC_BOOTSTRAP=1 lets it accept the
# sanitizer flags cargo fuzz passes. cargo-fuzz is installed on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export RUSTC_BOOTSTRAP=1
TARGETS=(trigger_event object_key object_reader validate_redact bulk_response)
CORPUS="$ROOT/target/fuzz-corpus"

need_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz.sh: installing cargo-fuzz (cargo install --locked cargo-fuzz)" >&2
        cargo install --locked cargo-fuzz
    fi
}

# seed TARGET: writes the target's seed corpus from the fixtures.
seed() {
    local target="$1" dir="$CORPUS/$1"
    mkdir -p "$dir"
    case "$target" in
        trigger_event)
            cp fixtures/samples/events/*.json "$dir/" ;;
        object_key)
            python3 - "$dir" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
keys = ["a+b%2Bc+d", "100%25", "%ZZ", "bad%C3", "caf%C3%A9+%E6%97%A5"]
def walk(value):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "key" and isinstance(v, str):
                keys.append(v)
            walk(v)
    elif isinstance(value, list):
        for v in value:
            walk(v)
    elif isinstance(value, str) and value.startswith("{"):
        try:
            walk(json.loads(value))
        except ValueError:
            pass
for path in pathlib.Path("fixtures/samples/events").glob("*.json"):
    walk(json.loads(path.read_text()))
for i, key in enumerate(keys):
    (out / f"key-{i}").write_text(key)
PY
            ;;
        object_reader)
            find fixtures/samples/logs -type f -size -300k -exec cp {} "$dir/" \; ;;
        validate_redact)
            python3 - "$dir" <<'PY'
import pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = pathlib.Path("fixtures/samples/logs/messy.ndjson").read_bytes().split(b"\n")
for i, line in enumerate(lines[:400]):
    if line.strip():
        (out / f"record-{i}").write_bytes(line[:4096])
PY
            ;;
        bulk_response)
            python3 - "$dir" <<'PY'
import json, pathlib, struct, sys
out = pathlib.Path(sys.argv[1])
def item(status, error=None):
    body = {"_id": "x", "status": status}
    if error: body["error"] = {"type": error, "reason": error + " happened"}
    return {"create": body}
seeds = {
    "all-ok": (200, {"errors": False, "items": [item(201), item(201), item(201)]}),
    "mixed": (200, {"errors": True, "items": [item(201), item(409, "version_conflict_engine_exception"), item(429, "es_rejected_execution_exception"), item(400, "mapper_parsing_exception")]}),
    "too-large": (413, {"error": "Request Entity Too Large"}),
    "auth": (401, {"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401}),
    "busy": (503, {"error": {"type": "unavailable_shards_exception"}, "status": 503}),
}
for name, (status, body) in seeds.items():
    n = len(body.get("items", [])) or 2
    raw = struct.pack("<H", status - 100) + bytes([n]) + json.dumps(body).encode()
    (out / name).write_bytes(raw)
PY
            ;;
    esac
}

run_target() {
    local target="$1" seconds="$2" log
    seed "$target"
    log="$ROOT/target/fuzz-$target.log"
    echo "== fuzz $target for ${seconds}s (full output: $log)"
    local code=0
    (cd fuzz && cargo fuzz run "$target" "$CORPUS/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1) >"$log" 2>&1 || code=$?
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
    if ((code != 0)); then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $target failed (exit $code); a crashing input is in fuzz/artifacts/$target/" >&2
        return 1
    fi
}

case "${1:-}" in
    smoke)
        need_cargo_fuzz
        for target in "${TARGETS[@]}"; do run_target "$target" "${2:-20}"; done ;;
    run)
        need_cargo_fuzz
        run_target "${2:?which target? see scripts/fuzz.sh list}" "${3:-600}" ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
