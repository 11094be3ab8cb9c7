#!/usr/bin/env bash
# Checks that the declared minimum Rust version (`rust-version` in the root Cargo.toml's
# [workspace.package]) is true:
#
# 1. every workspace member inherits it, so that clippy's `incompatible_msrv` lint (on by
#    default; scripts/test.sh runs clippy with -D warnings) rejects our own code when it
#    uses anything newer;
# 2. no locked dependency declares a higher rust-version, in Cargo.lock nor in the fuzz
#    targets' own fuzz/Cargo.lock.
#
#   scripts/check-msrv.sh
#
# Exit 0 when it holds, 1 when it does not (with the offending packages listed).
set -euo pipefail
cd "$(dirname "$0")/.."

workspace_json="$(mktemp)"
fuzz_json="$(mktemp)"
trap 'rm -f "$workspace_json" "$fuzz_json"' EXIT
cargo metadata --locked --format-version 1 >"$workspace_json"
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >"$fuzz_json" || {
    echo "check-msrv: fuzz/Cargo.lock is out of date; refresh it with" >&2
    echo "    cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null" >&2
    exit 1
}

python3 - "$workspace_json" "$fuzz_json" <<'PY'
import json
import sys


def version(text):
    """'1.94.1' -> (1, 94, 1); a missing patch or minor counts as 0, as cargo reads it."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def load(path):
    with open(path) as f:
        return json.load(f)


workspace = load(sys.argv[1])
members = set(workspace["workspace_members"])
packages = {p["id"]: p for p in workspace["packages"]}
declared = {packages[m]["name"]: packages[m].get("rust_version") for m in members}
failures = []

missing = sorted(name for name, rv in declared.items() if rv is None)
if missing:
    failures.append("workspace members without rust-version.workspace = true: " + ", ".join(missing))
values = sorted({rv for rv in declared.values() if rv is not None}, key=version)
if len(values) > 1:
    failures.append("workspace members declare different rust-versions: " + ", ".join(values))
if not values:
    print("check-msrv: no workspace member declares a rust-version", file=sys.stderr)
    sys.exit(1)
ours = values[-1]

highest = None
for label, metadata in (("Cargo.lock", workspace), ("fuzz/Cargo.lock", load(sys.argv[2]))):
    own = set(metadata["workspace_members"])
    # Every package the lock file resolves, for every platform: a dependency that only
    # Windows or macOS builds still has to build with the declared toolchain.
    resolved = {node["id"] for node in metadata["resolve"]["nodes"]}
    above = []
    for p in metadata["packages"]:
        rv = p.get("rust_version")
        if p["id"] not in resolved or p["id"] in own or p["source"] is None or rv is None:
            continue
        if highest is None or version(rv) > version(highest[0]):
            highest = (rv, f"{p['name']} {p['version']}")
        if version(rv) > version(ours):
            above.append(f"{p['name']} {p['version']} (rust-version {rv})")
    if above:
        failures.append(f"{label}: dependencies need more than rust-version {ours}:\n    " + "\n    ".join(sorted(above)))

if failures:
    for failure in failures:
        print("check-msrv: " + failure, file=sys.stderr)
    sys.exit(1)
top = f"; the highest a dependency declares is {highest[0]} ({highest[1]})" if highest else ""
print(f"check-msrv: rust-version {ours} holds for every workspace member and locked dependency{top}")
PY
