#!/usr/bin/env bash
# A single-node Garage (S3-compatible object store) on 127.0.0.1 for the S3 test tier.
#
#   scripts/garage.sh install   # cargo install --locked garage --version 2.5.0 (once, ~15 min)
#   scripts/garage.sh start     # idempotent: config, server, layout, key, buckets; prints the env file
#   . "$(scripts/garage.sh env)"  # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... for the tests
#   scripts/garage.sh stop
#   scripts/garage.sh status    # exit 0 when the server runs
#
# Environment:
#   TIX_GARAGE_DIR            state dir (default: <repo>/target/garage)
#   TIX_GARAGE_PORT           S3 API port (default 3900); RPC uses TIX_GARAGE_RPC_PORT
#                             (default PORT+1), admin API TIX_GARAGE_ADMIN_PORT (default PORT+3)
#   TIX_GARAGE_BIN            garage binary (default: `garage` on PATH, else ~/.cargo/bin/garage)
#   TIX_GARAGE_START_TIMEOUT  seconds to wait for the server and the cluster (default 60)
#   TIX_GARAGE_INSTALL_TIMEOUT seconds to wait for another `cargo install` of garage (default 3600)
#   TIX_GARAGE_LOG            RUST_LOG for the server (default garage=info)
#
# Everything is bound to 127.0.0.1. The key below is a fixed TEST credential: it opens
# nothing but this throwaway local server.
set -euo pipefail

readonly GARAGE_VERSION="2.5.0"
readonly KEY_ID="GK0123456789abcdef01234567"
readonly KEY_SECRET="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
readonly KEY_NAME="tix-logs-test"
readonly REGION="garage"
readonly BUCKETS=(tix-logs-test tix-logs-dl)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
STATE_DIR="${TIX_GARAGE_DIR:-$REPO_ROOT/target/garage}"
S3_PORT="${TIX_GARAGE_PORT:-3900}"
RPC_PORT="${TIX_GARAGE_RPC_PORT:-$((S3_PORT + 1))}"
ADMIN_PORT="${TIX_GARAGE_ADMIN_PORT:-$((S3_PORT + 3))}"
START_TIMEOUT="${TIX_GARAGE_START_TIMEOUT:-60}"
INSTALL_TIMEOUT="${TIX_GARAGE_INSTALL_TIMEOUT:-3600}"
CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"

# Garage reads these from the environment and they would override our config file.
while IFS= read -r var; do
	unset "$var"
done < <(compgen -e | grep '^GARAGE_' || true)

log() { printf 'garage.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	# The header comment, up to the first line that is not a comment.
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

check_port_var() {
	local name=$1 value=$2
	if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
		die "$name must be a TCP port, got '$value'"
	fi
}

# ---------------------------------------------------------------- paths (after STATE_DIR is final)
set_paths() {
	if [[ ${1:-} == create ]]; then
		mkdir -p "$STATE_DIR"
	fi
	if [[ -d $STATE_DIR ]]; then
		STATE_DIR="$(cd "$STATE_DIR" && pwd)"
	fi
	CONFIG="$STATE_DIR/garage.toml"
	PID_FILE="$STATE_DIR/garage.pid"
	LOG_FILE="$STATE_DIR/garage.log"
	ENV_FILE="$STATE_DIR/env"
	RPC_SECRET_FILE="$STATE_DIR/rpc_secret"
	ADMIN_TOKEN_FILE="$STATE_DIR/admin_token"
}

# ---------------------------------------------------------------- binary
find_garage() {
	if [[ -n ${TIX_GARAGE_BIN:-} ]]; then
		[[ -x $TIX_GARAGE_BIN ]] || die "TIX_GARAGE_BIN=$TIX_GARAGE_BIN is not an executable"
		printf '%s\n' "$TIX_GARAGE_BIN"
		return 0
	fi
	if command -v garage >/dev/null 2>&1; then
		command -v garage
		return 0
	fi
	if [[ -x $CARGO_BIN_DIR/garage ]]; then
		printf '%s\n' "$CARGO_BIN_DIR/garage"
		return 0
	fi
	return 1
}

require_garage() {
	GARAGE="$(find_garage)" || die "no garage binary on PATH nor in $CARGO_BIN_DIR; run: $0 install"
	local version
	version="$("$GARAGE" --version 2>/dev/null | head -n1 || true)"
	# e.g. "garage cargo:2.5.0 [features: bundled-libs, k2v, lmdb, metrics, sqlite]"
	if [[ ! $version =~ [^0-9.]2\.[0-9]+ ]]; then
		log "warning: $GARAGE reports '$version'; this script is written for garage 2.x ($GARAGE_VERSION)"
	fi
	if [[ $version == *features:* && $version != *sqlite* ]]; then
		die "$GARAGE was built without the sqlite feature ('$version'); reinstall with: cargo install --locked garage --version $GARAGE_VERSION"
	fi
}

# This process and its ancestors (a wrapper shell whose command line mentions the build
# must not make us wait for ourselves).
ancestors() {
	local pid=$$
	while [[ -n $pid && $pid != 0 ]]; do
		printf '%s\n' "$pid"
		pid="$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
	done
}

# A running `cargo install ... garage` (cargo itself, or a shell wrapper running it).
other_garage_build() {
	local pids mine
	pids="$(pgrep -f '(^|[ /])cargo install( [^ ]+)* garage( |$)' 2>/dev/null || true)"
	[[ -n $pids ]] || return 0
	mine="$(ancestors)"
	grep -vxF -f <(printf '%s\n' "$mine") <<<"$pids" || true
}

cmd_install() {
	local bin pids waited=0
	if bin="$(find_garage)"; then
		log "garage already installed: $bin ($("$bin" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
		return 0
	fi
	pids="$(other_garage_build)"
	if [[ -n $pids ]]; then
		log "another 'cargo install ... garage' is running (pid $(echo "$pids" | tr '\n' ' ')); waiting for it (log: /tmp/garage-install.log if started by the setup)"
		while [[ -n "$(other_garage_build)" ]]; do
			if ((waited >= INSTALL_TIMEOUT)); then
				die "the other garage build is still running after ${INSTALL_TIMEOUT}s; try again later"
			fi
			sleep 10
			waited=$((waited + 10))
		done
		if bin="$(find_garage)"; then
			log "garage installed by the other build: $bin"
			return 0
		fi
		log "the other build ended without a garage binary; building it here"
	fi
	local cargo
	cargo="$(command -v cargo || true)"
	[[ -n $cargo ]] || cargo="$CARGO_BIN_DIR/cargo"
	[[ -x $cargo ]] || die "cargo not found (needed to build garage)"
	log "building garage $GARAGE_VERSION with cargo install (about 15 minutes on 2 cores)"
	"$cargo" install --locked garage --version "$GARAGE_VERSION"
	bin="$(find_garage)" || die "cargo install finished but no garage binary is on PATH or in $CARGO_BIN_DIR"
	log "installed: $bin"
}

# ---------------------------------------------------------------- helpers
# Every CLI call goes through the config file, with a bound on its duration.
g() {
	timeout 30 "$GARAGE" -c "$CONFIG" "$@"
}

random_hex32() {
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

# The secret is random once, then fixed for this state dir.
persistent_secret() {
	local file=$1
	if [[ ! -s $file ]]; then
		(
			umask 077
			random_hex32 >"$file"
		)
	fi
	local value
	value="$(tr -d ' \n' <"$file")"
	[[ $value =~ ^[0-9a-f]{64}$ ]] || die "$file does not hold 64 hex characters; delete it (and the state dir) to regenerate"
	printf '%s\n' "$value"
}

render_config() {
	local rpc_secret admin_token
	rpc_secret="$(persistent_secret "$RPC_SECRET_FILE")"
	admin_token="$(persistent_secret "$ADMIN_TOKEN_FILE")"
	cat <<EOF
# Written by scripts/garage.sh: a single-node test server on 127.0.0.1. Do not edit: the
# script rewrites it while the server is stopped.
metadata_dir = "$STATE_DIR/meta"
data_dir = "$STATE_DIR/data"
db_engine = "sqlite"

replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$admin_token"
EOF
}

# pid of our server, if it runs (the pid file must name a garage server using our config).
running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid="$(tr -d ' \n' <"$PID_FILE")"
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[[ -r /proc/$pid/cmdline ]] || {
		# No procfs: trust kill -0.
		printf '%s\n' "$pid"
		return 0
	}
	local cmdline
	cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
	[[ $cmdline == *"$CONFIG"*server* ]] || return 1
	printf '%s\n' "$pid"
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

s3_answers() {
	if command -v curl >/dev/null 2>&1; then
		local code
		code="$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" || true)"
		[[ -n $code && $code != 000 ]]
	else
		port_in_use "$S3_PORT"
	fi
}

log_tail() {
	if [[ -f $LOG_FILE ]]; then
		log "last lines of $LOG_FILE:"
		tail -n 40 "$LOG_FILE" >&2
	fi
}

fail_start() {
	log "error: $*"
	log_tail
	local pid
	if pid="$(running_pid)"; then
		log "the server is left running (pid $pid) for inspection; '$0 stop' stops it"
	fi
	exit 1
}

# Run "$@" until it succeeds or TIMEOUT seconds pass; fail with the message and the log tail.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + START_TIMEOUT))
	local out
	while true; do
		if out="$("$@" 2>&1)"; then
			return 0
		fi
		if ! running_pid >/dev/null; then
			fail_start "the garage server exited while waiting for: $what"
		fi
		if ((SECONDS >= deadline)); then
			log "last attempt said: $out"
			fail_start "timed out after ${START_TIMEOUT}s waiting for: $what"
		fi
		sleep 1
	done
}

layout_version() {
	local out
	out="$(g layout show 2>&1)" || {
		printf '%s\n' "$out" >&2
		return 1
	}
	sed -n 's/^Current cluster layout version: *\([0-9][0-9]*\).*/\1/p' <<<"$out" | head -n1
}

# ---------------------------------------------------------------- start
launch_server() {
	local p
	for p in "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT"; do
		if port_in_use "$p"; then
			die "port 127.0.0.1:$p is already in use by another process; set TIX_GARAGE_PORT (and TIX_GARAGE_RPC_PORT/TIX_GARAGE_ADMIN_PORT) to free ports"
		fi
	done
	mkdir -p "$STATE_DIR/meta" "$STATE_DIR/data"
	log "starting garage server ($GARAGE), log: $LOG_FILE"
	printf '\n==== %s: garage.sh start\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG_FILE"
	local pid
	# Own session: the server outlives the shell (or test harness) that started it.
	if command -v setsid >/dev/null 2>&1; then
		NO_COLOR=1 RUST_LOG="${TIX_GARAGE_LOG:-garage=info}" setsid "$GARAGE" -c "$CONFIG" server \
			</dev/null >>"$LOG_FILE" 2>&1 &
	else
		NO_COLOR=1 RUST_LOG="${TIX_GARAGE_LOG:-garage=info}" nohup "$GARAGE" -c "$CONFIG" server \
			</dev/null >>"$LOG_FILE" 2>&1 &
	fi
	pid=$!
	printf '%s\n' "$pid" >"$PID_FILE"
	sleep 0.5
	if ! running_pid >/dev/null; then
		# setsid may have forked: find the server by its command line.
		local found
		found="$(pgrep -f -- "-c $CONFIG server" | head -n1 || true)"
		if [[ -n $found ]]; then
			printf '%s\n' "$found" >"$PID_FILE"
		elif kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			rm -f "$PID_FILE"
			fail_start "the launched process $pid does not look like 'garage -c $CONFIG server'; stopped it"
		else
			rm -f "$PID_FILE"
			fail_start "garage server exited right after launch"
		fi
	fi
}

ensure_layout() {
	local version node_id
	version="$(layout_version)" || fail_start "cannot read the cluster layout"
	[[ -n $version ]] || fail_start "cannot parse the layout version from 'garage layout show'"
	if ((version >= 1)); then
		return 0
	fi
	node_id="$(g node id -q 2>/dev/null | head -n1)" || fail_start "cannot read the node id"
	node_id="${node_id%%@*}"
	[[ $node_id =~ ^[0-9a-f]{64}$ ]] || fail_start "unexpected node id '$node_id'"
	log "assigning layout: node ${node_id:0:16}…, zone dc1, capacity 1G"
	g layout assign -z dc1 -c 1G "$node_id" >/dev/null || fail_start "garage layout assign failed"
	g layout apply --version $((version + 1)) >/dev/null || fail_start "garage layout apply failed"
}

ensure_key() {
	if g key info "$KEY_ID" >/dev/null 2>&1; then
		return 0
	fi
	log "importing the test key $KEY_ID"
	g key import -n "$KEY_NAME" --yes "$KEY_ID" "$KEY_SECRET" >/dev/null || fail_start "garage key import failed"
}

bucket_present_or_create() {
	g bucket info "$1" >/dev/null 2>&1 || g bucket create "$1"
}

ensure_bucket() {
	local bucket=$1
	if ! g bucket info "$bucket" >/dev/null 2>&1; then
		log "creating bucket $bucket"
		wait_for "bucket $bucket to be created" bucket_present_or_create "$bucket"
	fi
	# Idempotent: granting what is already granted changes nothing.
	g bucket allow --read --write --owner "$bucket" --key "$KEY_ID" >/dev/null ||
		fail_start "garage bucket allow on $bucket failed"
}

write_env_file() {
	local tmp="$ENV_FILE.tmp.$$"
	cat >"$tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export TIX_S3_TEST_BUCKET=${BUCKETS[0]}
export TIX_S3_TEST_DL_BUCKET=${BUCKETS[1]}
EOF
	mv -f "$tmp" "$ENV_FILE"
}

cmd_start() {
	require_garage
	set_paths create
	local wanted tmp
	wanted="$(render_config)"
	if running_pid >/dev/null; then
		if [[ ! -f $CONFIG ]] || [[ "$(cat "$CONFIG")" != "$wanted" ]]; then
			die "a garage server (pid $(running_pid)) runs with another configuration (ports changed?); run '$0 stop' first"
		fi
		log "garage server already running (pid $(running_pid))"
	else
		rm -f "$PID_FILE"
		tmp="$CONFIG.tmp.$$"
		(
			umask 077
			printf '%s\n' "$wanted" >"$tmp"
		)
		mv -f "$tmp" "$CONFIG"
		launch_server
	fi
	wait_for "the server to answer 'garage status'" g status
	ensure_layout
	wait_for "the cluster to be healthy ('garage health')" g health -q
	wait_for "the S3 API on 127.0.0.1:$S3_PORT" s3_answers
	ensure_key
	local bucket
	for bucket in "${BUCKETS[@]}"; do
		ensure_bucket "$bucket"
	done
	write_env_file
	log "ready: S3 on http://127.0.0.1:$S3_PORT (region $REGION), buckets ${BUCKETS[*]}, pid $(running_pid)"
	printf '%s\n' "$ENV_FILE"
}

# ---------------------------------------------------------------- stop / env / status
cmd_stop() {
	set_paths
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		log "garage server is not running"
		return 0
	fi
	log "stopping garage server (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "still running after 30s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 1
			break
		fi
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		die "could not stop pid $pid"
	fi
	rm -f "$PID_FILE"
	log "stopped"
}

cmd_env() {
	set_paths
	running_pid >/dev/null || die "garage is not running; run: $0 start"
	[[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE; run: $0 start"
	printf '%s\n' "$ENV_FILE"
}

cmd_status() {
	set_paths
	local pid
	if pid="$(running_pid)"; then
		echo "running (pid $pid), S3 http://127.0.0.1:$S3_PORT, state $STATE_DIR"
	else
		echo "not running (state $STATE_DIR)"
		return 1
	fi
}

main() {
	check_port_var TIX_GARAGE_PORT "$S3_PORT"
	check_port_var TIX_GARAGE_RPC_PORT "$RPC_PORT"
	check_port_var TIX_GARAGE_ADMIN_PORT "$ADMIN_PORT"
	[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "TIX_GARAGE_START_TIMEOUT must be a number of seconds"
	[[ $INSTALL_TIMEOUT =~ ^[0-9]+$ ]] || die "TIX_GARAGE_INSTALL_TIMEOUT must be a number of seconds"
	case "${1:-}" in
	install) cmd_install ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	env) cmd_env ;;
	status) cmd_status ;;
	-h | --help | help)
		usage
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
