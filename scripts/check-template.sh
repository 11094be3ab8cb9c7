#!/usr/bin/env bash
# Lints the SAM template with cfn-lint and with `sam validate --lint` (the SAM CLI's own
# transform check plus its lint), both installed from PyPI when missing (aws-sam-cli is a
# large install: about 100 MB, once).
# Exit status: 0 when both report nothing (no error, no warning); non-zero otherwise.
#
#   scripts/check-template.sh [TEMPLATE]   # default: <repo>/template.yaml
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="${1:-$REPO_ROOT/template.yaml}"

[[ -f $TEMPLATE ]] || {
	echo "check-template.sh: no template at $TEMPLATE" >&2
	exit 2
}

# pip --user installs land in ~/.local/bin, often not on PATH. (`site --user-base` exits
# non-zero when user site-packages are disabled, e.g. in a venv: ignore that.)
pip_install() { # COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	command -v python3 >/dev/null 2>&1 || {
		echo "check-template.sh: $1 is missing and there is no python3 to install $2" >&2
		exit 2
	}
	echo "check-template.sh: installing $2 from PyPI" >&2
	python3 -m pip install --quiet "$2"
	user_base="$(python3 -m site --user-base || true)"
	if [[ -n $user_base ]]; then
		PATH="$PATH:$user_base/bin"
		export PATH
	fi
	command -v "$1" >/dev/null 2>&1 || {
		echo "check-template.sh: $2 installed but $1 not found on PATH" >&2
		exit 2
	}
}
pip_install cfn-lint cfn-lint
pip_install sam aws-sam-cli

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

# The SAM CLI checks the transform itself (what `sam deploy` would send) and lints again
# with its bundled cfn-lint. No AWS call, no credentials; telemetry off.
status=0
SAM_CLI_TELEMETRY=0 env -u AWS_REGION -u AWS_DEFAULT_REGION \
	sam validate --lint --region "${CFN_REGIONS%% *}" --template-file "$TEMPLATE" || status=$?
if ((status != 0)); then
	echo "check-template.sh: sam validate --lint reported findings (exit $status)" >&2
	exit "$status"
fi
echo "check-template.sh: ok (cfn-lint and sam validate --lint: no errors, no warnings)" >&2
