#!/usr/bin/env bash
# The Lambda's cold start on this machine: time from exec of tix-logs-lambda to its first
# runtime-API request (GET /2018-06-01/runtime/invocation/next), the median of RUNS runs,
# with the tantivy backend and with the Elasticsearch backend against testkit's
# FakeCluster on 127.0.0.1 (bench/src/bin/tix-cold-start.rs serves both). Also prints
# the binary's size. Not part of CI.
#
#   bench/lambda-cold-start.sh [BINARY] [RUNS]   # default: target/release/tix-logs-lambda (built), 20 runs
#
# Secrets come from plain variables here (no SSM round trip: that is one HTTPS request
# on AWS, not measurable on loopback). AWS credentials and region are fake; nothing
# calls AWS while the function starts.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
BINARY="${1:-}"
RUNS="${2:-20}"
if [[ -z $BINARY ]]; then
	cargo build --release --locked --bin tix-logs-lambda >&2
	BINARY="$REPO_ROOT/target/release/tix-logs-lambda"
fi
[[ -x $BINARY ]] || {
	echo "lambda-cold-start.sh: no executable at $BINARY" >&2
	exit 2
}
cargo build --release --locked -p bench --bin tix-cold-start >&2
TOOL="$REPO_ROOT/target/release/tix-cold-start"

INDEX="$(mktemp -d)"
trap 'rm -rf "$INDEX"' EXIT
# A clean environment but for what the function reads (the caller's may hold Garage's
# endpoint or a profile).
run() {
	env -i PATH="$PATH" HOME="$INDEX" \
		AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=AKIDCOLDSTART AWS_SECRET_ACCESS_KEY=cold-start-secret \
		AWS_EC2_METADATA_DISABLED=true AWS_LAMBDA_LOG_FORMAT=JSON AWS_LAMBDA_LOG_LEVEL=INFO \
		TIX_PII_KEY="cold-start-pii-key-0123456789abcdef0123456789" \
		TIX_DEAD_LETTER="s3://tix-logs-dl/cold-start/" TIX_TRIGGER_PREFIX="s3://tix-logs/in/" \
		TIX_BACKEND=tantivy TIX_INDEX="$INDEX/index" \
		"$TOOL" --runs "$RUNS" "$@" "$BINARY"
}

size=$(stat -c %s "$BINARY")
echo "binary: $BINARY, $size bytes ($((size / 1024 / 1024)) MiB)"
echo "tantivy:        $(run 2>/dev/null)"
echo "elasticsearch:  $(run --es 2>/dev/null)"
