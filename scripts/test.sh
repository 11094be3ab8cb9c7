#!/usr/bin/env bash
# The whole test suite: what the README's test command and CI (.ci/run) run.
#
# 0. the cheap checks first: formatting (rustfmt), the declared minimum Rust version
#    (scripts/check-msrv.sh) and lints (clippy, warnings are errors);
# 1. every tier that needs nothing but the workspace (cargo test --workspace);
# 2. the S3 tier against a real Garage server on 127.0.0.1, installed (once, into the
#    cargo bin directory) and started by scripts/garage.sh;
# 3. crash tests with failpoints, a short smoke run of every fuzz target, and the SAM
#    template through cfn-lint.
# The live Elasticsearch tier cannot run here (no server installable); it is reported
# as not run, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== formatting: cargo fmt --check, and rustfmt on the fuzz targets (outside the workspace)"
cargo fmt --all --check
rustfmt --edition 2021 --check fuzz/fuzz_targets/*.rs

echo "== minimum Rust version: no locked dependency needs more than rust-version"
scripts/check-msrv.sh

# -D warnings includes clippy's incompatible_msrv: our own code stays within rust-version.
echo "== lints: cargo clippy, warnings are errors"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The pure core alone (what the fuzz targets build): indexer without its tantivy and
# Elasticsearch client features, ingest without the AWS edge.
cargo clippy -p indexer -p ingest --no-default-features --locked -- -D warnings

# botocore: the independent SigV4 check of the Elasticsearch/OpenSearch tests (testkit/sigv4_gate.py).
python3 -c 'import sys, botocore; sys.exit(botocore.__version__ != "1.43.11")' 2>/dev/null ||
	python3 -m pip install --quiet 'botocore==1.43.11'
# cargo-lambda: `cargo lambda watch`/`invoke`, the local dev loop the Lambda's Garage tier
# runs for real (ingest/tests/lambda_watch.rs). PyPI ships it as a prebuilt binary.
[[ "$(cargo lambda --version 2>/dev/null)" == "cargo-lambda 1.9.2 "* ]] ||
	python3 -m pip install --quiet 'cargo-lambda==1.9.2'

# Chromium: the booking report's HTML page is rendered in a real headless browser
# (query-cli/tests/report_cli.rs), Debian's package.
command -v chromium >/dev/null ||
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

echo "== Garage (S3 tier server)"
scripts/garage.sh install
scripts/garage.sh start
trap 'scripts/garage.sh stop || true' EXIT
# shellcheck disable=SC1090
. "$(scripts/garage.sh env)"

echo "== unit, property, conformance, wire-protocol and CLI tests"
cargo test --workspace --locked

echo "== crash tests: failpoints (the fail crate) and the conservation oracle"
cargo test --workspace --locked --features ingest/failpoints --test failpoints --test es_failpoints -- --include-ignored

echo "== S3 tier: the handler, the Lambda binary and the CLI against Garage at $AWS_ENDPOINT_URL (and, end to end, the fake Elasticsearch cluster)"
# --workspace keeps the feature set of the first run, so nothing is rebuilt.
cargo test --workspace --locked --test s3_garage --test s3_faults --test lambda_binary --test s3_cli --test reconcile --test es_e2e --test es_cli --test s3_versioned --test reconcile_lambda --test redrive_cli --test pii_sweep -- --ignored

echo "== the Lambda dev loop: cargo lambda watch (its emulator builds and runs tix-logs-lambda) and cargo lambda invoke"
cargo test --workspace --locked --test lambda_watch -- --ignored

echo "== fuzz smoke: every cargo fuzz target for 15 s (the 10-minute runs: scripts/fuzz.sh run TARGET)"
scripts/fuzz.sh smoke 15

echo "== SAM template (cfn-lint)"
scripts/check-template.sh

echo "== not run here: live Elasticsearch conformance (indexer/tests/es_live.rs, listed above as ignored)."
echo "   No Elasticsearch server can be installed on this machine; set TIX_ES_URL and run"
echo "   cargo test -p indexer --test es_live -- --include-ignored   against a real cluster."
