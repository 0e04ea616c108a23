#!/usr/bin/env bash
# Added latency at a fixed request rate (issue 7: p99 over the origin's <= 1 ms at c=32).
#
#   benches/load/latency.sh
#
# compare.sh drives every target as hard as it goes, so its p99 is queueing in a saturated
# process, not the latency a proxy adds. Here wrk sends about RATE requests per second from
# CONNS connections, spread out in time (see "How requests are paced" below), below what every
# target can serve, and the p50/p99 of each target are set against the origin's at that rate.
# A connection sends its next request only after the response, so the requests a stall holds
# up show it in their latency, but those that would have been sent during it are not counted
# as waiting (no wrk2-style correction). Targets (all on loopback, as in compare.sh): the
# origin (nginx, static files), nginx proxy_pass, and consentgate without consent (the page
# rewritten, the banner injected) and with full consent.
# Proxies are pinned to CPU $PROXY_CPU, the origin and wrk to CPU $AUX_CPU; targets are
# interleaved over ROUNDS rounds and the medians reported.
#
# Environment (defaults): RATE=1000 CONNS=32 DURATION=10 ROUNDS=3 PAGES="5k 60k" PROXY_CPU=0
#   AUX_CPU=1 KEEP=0
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

RATE="${RATE:-1000}"
CONNS="${CONNS:-32}"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
PAGES="${PAGES:-5k 60k}"
PROXY_CPU="${PROXY_CPU:-0}"
AUX_CPU="${AUX_CPU:-1}"

need_tools nginx wrk curl python3 taskset cargo awk
trap cleanup EXIT
trap 'exit 130' INT TERM
make_workdir
build_release

mkdir -p "$WORK/www"
python3 "$HERE/gen_pages.py" "$REPO" "$WORK/www"
P_ORIGIN="$(free_port)"
P_PASS="$(free_port)"
P_CG="$(free_port)"

origin_dir="$(write_nginx_conf origin "
    sendfile on;
    types { text/html html; }
    server { listen 127.0.0.1:$P_ORIGIN; root $WORK/www; }")"
start_nginx "$origin_dir" "$AUX_CPU"
wait_port "$P_ORIGIN" "origin nginx, see $origin_dir/logs"
proxy_dir="$(write_nginx_conf proxy "
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_PASS;
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffer_size 16k; proxy_buffers 16 16k; }
    }")"
start_nginx "$proxy_dir" "$PROXY_CPU"
wait_port "$P_PASS" "proxy nginx, see $proxy_dir/logs"
start_consentgate "$P_CG" "$P_ORIGIN" "$PROXY_CPU"
COOKIE="$(consent_cookie "$P_CG")"

# How requests are paced. hey -q (used here before) ticks all of a run's connections together:
# CONNS requests left at the same instant every CONNS/RATE s, so p50 and p99 measured how long a
# proxy takes to drain a burst of CONNS requests (CONNS times its service time), not the latency
# it adds. Here each wrk connection waits a random time between its requests (uniform on
# [0, 2 * CONNS/RATE s], wrk's delay() hook), so requests arrive spread out at about RATE a
# second. wrk times each request from its send, in C, with little jitter of its own.
PACE_MS="$(awk -v r="$RATE" -v c="$CONNS" 'BEGIN { printf "%.3f", c * 1000 / r }')"
cat >"$WORK/paced.lua" <<LUA
math.randomseed(os.time())
function delay()
	return math.random() * 2 * $PACE_MS
end
LUA

# One run: prints "p50_ms p99_ms req_per_s errors".
run() {
	local port="$1" path="$2" cookie="$3" out="$WORK/wrk.txt"
	local args=(-t1 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency -s "$WORK/paced.lua" -H "Sec-Fetch-Dest: document")
	[[ -n "$cookie" ]] && args+=(-H "Cookie: $cookie")
	taskset -c "$AUX_CPU" wrk "${args[@]}" "http://127.0.0.1:$port$path" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
	local rps reqs p50 p99 errs stats
	# A plain assignment, so a wrk_stats that dies ends the script (set -e).
	stats="$(wrk_stats "$out")"
	read -r rps reqs p50 p99 errs <<<"$stats"
	printf '%s %s %s %s\n' "$p50" "$p99" "$rps" "$errs"
}

RESULTS="$WORK/latency.tsv"
: >"$RESULTS"
log "fixed rate: $RATE req/s from $CONNS connections, $DURATION s per run, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
	for p in $PAGES; do
		for target in origin pass cg-none cg-full; do
			case "$target" in
			origin) port="$P_ORIGIN" cookie="" ;;
			pass) port="$P_PASS" cookie="" ;;
			cg-none) port="$P_CG" cookie="" ;;
			cg-full) port="$P_CG" cookie="$COOKIE" ;;
			esac
			read -r p50 p99 rps errors < <(run "$port" "/page-$p.html" "$cookie")
			log "  round $round page-$p $target: p50 $p50 ms, p99 $p99 ms, $rps req/s, errors $errors"
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "page-$p" "$target" "$p50" "$p99" "$rps" "$errors" >>"$RESULTS"
		done
	done
done

echo "Command: RATE=$RATE CONNS=$CONNS DURATION=$DURATION ROUNDS=$ROUNDS benches/load/latency.sh"
echo "($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, wrk -c$CONNS, each connection pausing a random 0-$(awk -v p="$PACE_MS" 'BEGIN { printf "%.0f", 2 * p }') ms between requests; proxies pinned to CPU $PROXY_CPU with one worker each, origin and wrk on CPU $AUX_CPU)"
echo
echo "| page | target | p50 ms | p99 ms | p99 - origin's p99 | req/s | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
awk -F'\t' '
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ k = $1 SUBSEP $2; p50[k] = p50[k] " " $3; p99[k] = p99[k] " " $4; rps[k] = rps[k] " " $5; err[k] += $6
	  if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
	END {
		for (i = 1; i <= n; i++) {
			split(order[i], kk, SUBSEP)
			o = median(p99[kk[1] SUBSEP "origin"])
			d = median(p99[order[i]]) - o
			printf "| %s | %s | %.2f | %.2f | %+.2f ms%s | %.0f | %d |\n", kk[1], kk[2], median(p50[order[i]]), median(p99[order[i]]), d,
				(kk[2] == "origin" ? "" : (d <= 1 ? " (meets <= 1 ms)" : " (misses <= 1 ms)")), median(rps[order[i]]), err[order[i]]
		}
	}' "$RESULTS"
