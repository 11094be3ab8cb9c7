#!/usr/bin/env bash
# Lints the SAM template with cfn-lint (installed from PyPI when missing).
# Exit status: 0 when cfn-lint reports nothing (no error, no warning); non-zero otherwise.
#
#   scripts/check-template.sh [TEMPLATE]   # default: <repo>/template.yaml
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="${1:-$REPO_ROOT/template.yaml}"

[[ -f $TEMPLATE ]] || {
	echo "check-template.sh: no template at $TEMPLATE" >&2
	exit 2
}

if ! command -v cfn-lint >/dev/null 2>&1; then
	command -v python3 >/dev/null 2>&1 || {
		echo "check-template.sh: cfn-lint is missing and there is no python3 to install it" >&2
		exit 2
	}
	echo "check-template.sh: installing cfn-lint from PyPI" >&2
	python3 -m pip install --quiet cfn-lint
	# pip --user installs land in ~/.local/bin, often not on PATH. (`site --user-base`
	# exits non-zero when user site-packages are disabled, e.g. in a venv: ignore that.)
	user_base="$(python3 -m site --user-base || true)"
	if [[ -n $user_base ]]; then
		PATH="$PATH:$user_base/bin"
		export PATH
	fi
	command -v cfn-lint >/dev/null 2>&1 || {
		echo "check-template.sh: cfn-lint installed but not found on PATH" >&2
		exit 2
	}
fi

echo "check-template.sh: $(cfn-lint --version) on $TEMPLATE" >&2
# cfn-lint exits non-zero on errors (2) and warnings (4); informational findings (8) are
# not enabled by default. Any non-zero status fails this script.
status=0
# Explicit regions: cfn-lint otherwise takes AWS_REGION from the environment, which is
# "garage" while the test script has the S3 test server's variables loaded.
CFN_REGIONS="${TIX_CFN_REGIONS:-us-east-1 eu-west-1}"
# shellcheck disable=SC2086
env -u AWS_REGION -u AWS_DEFAULT_REGION cfn-lint --regions $CFN_REGIONS -- "$TEMPLATE" || status=$?
if ((status != 0)); then
	echo "check-template.sh: cfn-lint reported findings (exit $status)" >&2
	exit "$status"
fi
echo "check-template.sh: ok (no errors, no warnings)" >&2
