#!/usr/bin/env bash
# Lints the SAM template with cfn-lint and with `sam validate --lint` (the SAM CLI's own
# transform check plus its lint), both installed from PyPI when missing (aws-sam-cli is a
# large install: about 100 MB, once, into a cached virtual environment).
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

# cfn-lint and the SAM CLI live in a virtual environment of their own, at pinned versions:
# the SAM CLI needs boto3 and botocore of one release, while the SigV4 tests pin their own
# botocore in the system Python (scripts/test.sh), and one pip environment cannot hold both.
CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0
VENV="${TIX_TEMPLATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tix-logs/template-tools}"
tools_ready() {
	[[ "$("$VENV/bin/cfn-lint" --version 2>/dev/null)" == *" $CFN_LINT_VERSION" ]] &&
		[[ "$("$VENV/bin/sam" --version 2>/dev/null)" == *" $SAM_CLI_VERSION" ]]
}
if ! tools_ready; then
	command -v python3 >/dev/null 2>&1 || {
		echo "check-template.sh: python3 is needed to install cfn-lint and the SAM CLI" >&2
		exit 2
	}
	echo "check-template.sh: installing cfn-lint $CFN_LINT_VERSION and aws-sam-cli $SAM_CLI_VERSION into $VENV" >&2
	rm -rf "$VENV"
	python3 -m venv "$VENV"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
		"cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
	tools_ready || {
		echo "check-template.sh: cfn-lint or sam in $VENV does not answer with the pinned version" >&2
		exit 2
	}
fi
PATH="$VENV/bin:$PATH"
export PATH

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
