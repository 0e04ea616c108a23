# shellcheck shell=bash
# Shared by compare.sh and stream.sh: tool checks, free loopback ports, process bookkeeping and
# cleanup, the release build, nginx and consentgate launchers, and /proc readings.
# Sourced, never run: the caller sets `set -euo pipefail` and REPO.

# Every process we start is recorded here and ended by its pid on exit.
STARTED_PIDS=()
WORK=""

log() { printf '%s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

cleanup() {
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${STARTED_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n "$WORK" && -d "$WORK" ]]; then
		if [[ "${KEEP:-0}" == 1 ]]; then
			log "kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
}

# A scratch directory readable by nginx's workers (they may drop to another user).
make_workdir() {
	WORK="$(mktemp -d /tmp/consentgate-load.XXXXXX)"
	chmod 755 "$WORK"
}

# The real interpreter, not a version-manager shim that may fork it: the pid we record for a
# long-running Python process must be the process itself, so cleanup can end it.
python_bin() {
	python3 -c 'import sys; print(sys.executable)'
}

need_tools() {
	local missing=() t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	if ((${#missing[@]})); then
		log "missing: ${missing[*]}"
		log "Debian/Ubuntu: apt-get install -y nginx-light wrk curl python3 util-linux"
		log "  (or the full 'nginx' package; it needs the sub and gzip_static modules)"
		exit 1
	fi
}

# A loopback TCP port that is free now. The kernel picks it; we bind it a moment later, so a
# collision is possible in principle but wait_port would then report the wrong process quickly.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait until something accepts on 127.0.0.1:$1 (up to ~10 s).
wait_port() {

	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1 after 10 s${2:+ ($2)}"
}

build_release() {
	log "building: cargo build --release"
	(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
	CG_BIN="$REPO/target/release/consentgate"
	[[ -x "$CG_BIN" ]] || die "no binary at $CG_BIN"
}

# utime+stime of a process and all its threads, in clock ticks.
cpu_ticks() {
	local stat
	stat="$(<"/proc/$1/stat")"
	# Fields after "pid (comm) ": state is 1st, utime 12th, stime 13th.
	stat="${stat##*) }"
	awk '{ print $12 + $13 }' <<<"$stat"
}

# Peak resident set size of a process, in KiB.
vm_hwm_kb() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# The one worker of an nginx master (worker_processes 1).
nginx_worker() {
	local w
	for _ in $(seq 1 50); do
		w="$(pgrep -P "$1" | head -n 1 || true)"
		if [[ -n "$w" ]]; then
			echo "$w"
			return 0
		fi
		sleep 0.1
	done
	die "nginx master $1 has no worker"
}

# Common nginx main-context settings: foreground, one worker, everything inside $WORK.
# $1: name (directory), $2: the http{} body.
write_nginx_conf() {
	local dir="$WORK/nginx-$1"
	mkdir -p "$dir/logs" "$dir/tmp"
	chmod 755 "$dir" "$dir/tmp"
	local user_line=""
	# As root, keep workers as root so they can use our temp dirs; no privilege is gained.
	[[ "$(id -u)" == 0 ]] && user_line="user root;"
	cat >"$dir/nginx.conf" <<EOF
$user_line
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
$2
}
EOF
	echo "$dir"
}

# Start nginx pinned to CPU $2 with the config in directory $1. Sets NGINX_PID (the master).
# Not called in $(...): the pid must be recorded in this shell for cleanup.
start_nginx() {
	local dir="$1" cpu="$2"
	nginx -t -q -p "$dir" -c "$dir/nginx.conf" || die "nginx rejects $dir/nginx.conf"
	taskset -c "$cpu" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
	NGINX_PID="$!"
	STARTED_PIDS+=("$NGINX_PID")
}

# Start consentgate in front of http://127.0.0.1:$2 on port $1, pinned to CPU $3, on one thread
# (`server.workers = 1`: tokio's single-threaded scheduler). Sets CG_PID.
start_consentgate() {
	local port="$1" upstream="$2" cpu="$3" conf="$WORK/consentgate-$1.toml"
	cat >"$conf" <<EOF
[server]
listen = "127.0.0.1:$port"
# One thread, as nginx runs one worker here (the single-threaded scheduler).
workers = 1

[upstream]
url = "http://127.0.0.1:$upstream"

[consent]
key = "load-test-key-0123456789abcdef0123456789abcdef"

[receipts]
store = "off"
EOF
	# warn: nginx runs with access_log off; per-request info logs would not be a fair fight.
	CONSENTGATE_LOG=warn taskset -c "$cpu" \
		"$CG_BIN" --config "$conf" 2>"$WORK/consentgate-$port.log" &
	CG_PID="$!"
	STARTED_PIDS+=("$CG_PID")
	wait_port "$port" "consentgate, see $WORK/consentgate-$port.log"
}

# The static origin of compare.sh and instructions.sh: nginx, 1 worker, serving $WORK/www on
# 127.0.0.1:$1, pinned to CPU $2. Sets ORIGIN_MASTER and ORIGIN_WORKER.
start_origin() {
	local port="$1" cpu="$2" dir
	dir="$(write_nginx_conf origin "
    sendfile on;
    tcp_nopush on;
    types { text/html html; application/octet-stream bin; text/javascript js; }
    server {
        listen 127.0.0.1:$port;
        root $WORK/www;
        # Serve page.html.gz to clients (and proxies) that accept gzip: a site that precompresses.
        gzip_static on;
        gzip_proxied any;
        gzip_vary on;
    }")"
	start_nginx "$dir" "$cpu"
	ORIGIN_MASTER="$NGINX_PID"
	wait_port "$port" "origin nginx, see $dir/logs"
	# shellcheck disable=SC2034 # read by compare.sh
	ORIGIN_WORKER="$(nginx_worker "$ORIGIN_MASTER")"
}

# A full-consent cookie from consentgate on port $1: what a browser gets for "Accept all".
consent_cookie() {
	local port="$1" cookie
	cookie="$(curl -sS -o /dev/null -D - -X POST \
		-H "Origin: http://127.0.0.1:$port" \
		--data 'action=accept-all' "http://127.0.0.1:$port/__consent" |
		tr -d '\r' | awk -F'[:;] *' 'tolower($1) == "set-cookie" && $2 ~ /^consentgate=/ { print $2; exit }')"
	[[ -n "$cookie" ]] || die "POST /__consent gave no consentgate cookie"
	curl -sS -H "Cookie: $cookie" "http://127.0.0.1:$port/__consent/state" | grep -q '"decided":true' ||
		die "the consent cookie is not accepted by /__consent/state"
	echo "$cookie"
}

# wrk's latency with unit (412.00us, 1.23ms, 1.01s, 2.00m) in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.3f", n
	}'
}

# wrk_stats FILE: "req_per_s requests p50_ms p99_ms errors" from a `wrk --latency` output
# (errors: non-2xx answers and socket errors); dies if the file is not one.
wrk_stats() {
	local out="$1" rps reqs p50 p99 errs
	rps="$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
	reqs="$(awk '/ requests in / { print $1 }' "$out")"
	p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
	p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
	errs="$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
		END { print n + 0 }' "$out")"
	[[ -n "$rps" && -n "$reqs" && "$reqs" -gt 0 ]] || die "cannot read wrk output $out"
	echo "$rps $reqs $p50 $p99 $errs"
}
