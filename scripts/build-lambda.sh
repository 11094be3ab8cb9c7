#!/usr/bin/env bash
# Builds the deployable Lambda: `cargo lambda build --release --arm64 --bin tix-logs-lambda`
# into target/lambda/tix-logs-lambda/bootstrap (what `sam build --beta-features` packages),
# and prints the bootstrap's size. Installs what it needs when missing: cargo-lambda and
# ziglang (zig, the cross-linker) from PyPI, both binary wheels, and the Rust standard
# library for aarch64-unknown-linux-gnu through rustup. Not part of CI.
#
#   scripts/build-lambda.sh [--x86-64]   # default: arm64 (Graviton), as template.yaml
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
ARCH_FLAG=--arm64
TARGET=aarch64-unknown-linux-gnu
if [[ ${1:-} == --x86-64 ]]; then
	ARCH_FLAG=--x86-64
	TARGET=x86_64-unknown-linux-gnu
fi

user_bin() {
	local user_base
	user_base="$(python3 -m site --user-base || true)"
	[[ -n $user_base ]] && PATH="$PATH:$user_base/bin" && export PATH
	return 0
}

if ! command -v cargo-lambda >/dev/null 2>&1; then
	echo "build-lambda.sh: installing cargo-lambda from PyPI" >&2
	python3 -m pip install --quiet cargo-lambda
	user_bin
fi
# cargo lambda links with zig: from PATH, else the ziglang wheel (`python3 -m ziglang`),
# which cargo-zigbuild inside cargo-lambda finds by itself when no zig is on PATH.
if ! command -v zig >/dev/null 2>&1; then
	if ! python3 -m ziglang version >/dev/null 2>&1; then
		echo "build-lambda.sh: installing ziglang from PyPI" >&2
		python3 -m pip install --quiet ziglang
	fi
	echo "build-lambda.sh: zig $(python3 -m ziglang version) from the ziglang wheel" >&2
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
	echo "build-lambda.sh: adding the Rust target $TARGET" >&2
	rustup target add "$TARGET"
fi

cargo lambda build --release "$ARCH_FLAG" --locked --bin tix-logs-lambda
BOOTSTRAP="$REPO_ROOT/target/lambda/tix-logs-lambda/bootstrap"
[[ -f $BOOTSTRAP ]] || {
	echo "build-lambda.sh: cargo lambda finished but $BOOTSTRAP is missing" >&2
	exit 1
}
size=$(stat -c %s "$BOOTSTRAP")
echo "build-lambda.sh: $BOOTSTRAP ($TARGET): $size bytes ($((size / 1024 / 1024)) MiB)"
