#!/usr/bin/env bash
# Load comparison: consentgate against nginx on loopback (issue 7). One command:
#
#   benches/load/compare.sh
#
# Starts, all on 127.0.0.1 with ports the kernel picks:
#   origin   nginx, 1 worker, static files (sendfile, gzip_static for the .gz pages)
#   pass     nginx, 1 worker, proxy_pass to the origin (HTTP/1.1 keep-alive upstream)
#   sub      the same + one sub_filter ('</body>' -> a small element + '</body>'), identity
#   subgz    the same as sub + gzip level 1 to the client
#   cg       consentgate --config <generated>, one thread (server.workers = 1)
# The proxies (nginx's worker, consentgate) are pinned to CPU $PROXY_CPU with taskset; the origin
# and wrk to CPU $AUX_CPU. Runs wrk -c$CONNS for $DURATION s against each target, interleaved
# (origin, pass, sub, cg, origin, pass, ...) over $ROUNDS rounds, for the 5 KB, 60 KB and 1 MB
# pages, identity and gzip, no consent (cg-none) and full consent (cg-full), a 2 KB script (the
# proxy's fixed cost per request, as most subresources see it) and a 256 KB binary file.
# Prints the medians over rounds (req/s, p50, p99, CPU-microseconds per request of the process
# serving the target) and the ratios issue 7 sets targets for; then runs stream.sh.
#
# Environment (defaults): DURATION=5 ROUNDS=3 CONNS=32 WRK_THREADS=1 WARMUP=1 PROXY_CPU=0
#   AUX_CPU=1 WRK_TIMEOUT=30s PAGES="5k 60k 1m" STREAM=1 (0 skips stream.sh) KEEP=0 (1 keeps the scratch dir)
#   CEILING_US_60K: lol_html's no-op-handler time for the 60 KB page in microseconds; by default
#   read from target/criterion (cargo bench --bench rewriter), else issue 7's 245 MB/s yardstick.
# Results: target/load/<timestamp>.tsv (raw, one line per wrk run) and .md (the summary).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
WARMUP="${WARMUP:-1}"
PROXY_CPU="${PROXY_CPU:-0}"
AUX_CPU="${AUX_CPU:-1}"
PAGES="${PAGES:-5k 60k 1m}"
STREAM="${STREAM:-1}"
# Slow responses are counted in the latency, not dropped as socket timeouts (wrk: 2 s).
WRK_TIMEOUT="${WRK_TIMEOUT:-30s}"

need_tools nginx wrk curl python3 taskset cargo awk
trap cleanup EXIT
trap 'exit 130' INT TERM
make_workdir
build_release

mkdir -p "$WORK/www" "$WORK/wrk" "$REPO/target/load"
python3 "$HERE/gen_pages.py" "$REPO" "$WORK/www"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$REPO/target/load/$STAMP.tsv"
SUMMARY="$REPO/target/load/$STAMP.md"

P_ORIGIN="$(free_port)"
P_PASS="$(free_port)"
P_SUB="$(free_port)"
P_SUBGZ="$(free_port)"
P_CG="$(free_port)"

# --- origin ---------------------------------------------------------------------------------
start_origin "$P_ORIGIN" "$AUX_CPU"

# --- nginx proxies (one instance, one worker, three servers; only one is loaded at a time) ---
# What the sub_filter inserts: about what a consent banner placeholder would be.
SUB_SNIPPET='<div id="consent-banner" hidden></div>'
proxy_common="proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffer_size 16k; proxy_buffers 16 16k;"
proxy_dir="$(write_nginx_conf proxy "
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_PASS;
        location / { $proxy_common }
    }
    server {
        listen 127.0.0.1:$P_SUB;
        location / {
            $proxy_common
            # sub_filter needs the body uncompressed.
            proxy_set_header Accept-Encoding \"\";
            sub_filter '</body>' '$SUB_SNIPPET</body>';
        }
    }
    server {
        listen 127.0.0.1:$P_SUBGZ;
        location / {
            $proxy_common
            proxy_set_header Accept-Encoding \"\";
            sub_filter '</body>' '$SUB_SNIPPET</body>';
            gzip on;
            gzip_comp_level 1;
        }
    }")"
start_nginx "$proxy_dir" "$PROXY_CPU"
PROXY_MASTER="$NGINX_PID"
wait_port "$P_PASS" "proxy nginx, see $proxy_dir/logs"
wait_port "$P_SUB"
wait_port "$P_SUBGZ"
PROXY_WORKER="$(nginx_worker "$PROXY_MASTER")"

# --- consentgate ----------------------------------------------------------------------------
start_consentgate "$P_CG" "$P_ORIGIN" "$PROXY_CPU"
COOKIE="$(consent_cookie "$P_CG")"

port_of() {
	case "$1" in
	origin) echo "$P_ORIGIN" ;;
	pass) echo "$P_PASS" ;;
	sub) echo "$P_SUB" ;;
	subgz) echo "$P_SUBGZ" ;;
	cg-*) echo "$P_CG" ;;
	*) die "unknown target $1" ;;
	esac
}
pid_of() {
	case "$1" in
	origin) echo "$ORIGIN_WORKER" ;;
	pass | sub | subgz) echo "$PROXY_WORKER" ;;
	cg-*) echo "$CG_PID" ;;
	*) die "unknown target $1" ;;
	esac
}

# Request headers of a scenario and target, one per line. Pages are fetched as a browser
# navigates (Sec-Fetch-Dest: document, so consentgate injects its banner or settings control);
# the script and the binary as subresources. The consent cookie goes only to cg-full (nginx ignores it anyway).
headers_for() {
	local path="$1" enc="$2" target="$3"
	if [[ "$path" == *.html ]]; then
		echo "Sec-Fetch-Dest: document"
	else
		echo "Sec-Fetch-Dest: empty"
	fi
	[[ "$enc" == gzip ]] && echo "Accept-Encoding: gzip"
	[[ "$target" == cg-full ]] && echo "Cookie: $COOKIE"
	return 0
}

# --- correctness of the setup, before any timing --------------------------------------------
# Every target must answer 200, the nginx sub servers must have substituted, consentgate must
# have rewritten without consent, pass its body through with full consent, and gzip must come
# back gzip where the target is meant to compress.
check() {
	local path="$1" enc="$2" target="$3" port out hdr
	port="$(port_of "$target")"
	out="$WORK/check.body"
	hdr="$WORK/check.head"
	local args=()
	while IFS= read -r h; do args+=(-H "$h"); done < <(headers_for "$path" "$enc" "$target")
	curl -sS -o "$out" -D "$hdr" "${args[@]}" "http://127.0.0.1:$port$path" ||
		die "$target $path: request failed"
	grep -q '^HTTP/1.1 200' "$hdr" || die "$target $path ($enc): $(head -n 1 "$hdr")"
	if [[ "$enc" == gzip ]]; then
		grep -qi '^content-encoding: gzip' "$hdr" || die "$target $path: not gzip-encoded"
		gzip -dc <"$out" >"$out.plain" || die "$target $path: corrupt gzip"
		mv "$out.plain" "$out"
	fi
	[[ "$path" == *.html ]] || {
		cmp -s "$out" "$WORK/www${path}" || die "$target $path: body differs from the file"
		return 0
	}
	case "$target" in
	sub | subgz) grep -qF "$SUB_SNIPPET" "$out" || die "$target $path: no substitution" ;;
	cg-none)
		grep -q 'data-consentgate-src="https://static.zdassets.com' "$out" ||
			die "$target $path: Zendesk not neutralized"
		grep -q 'data-consentgate="banner"' "$out" || die "$target $path: no banner"
		;;
	cg-full)
		grep -q 'data-consentgate-src' "$out" && die "$target $path: rewritten despite full consent"
		grep -q 'src="https://static.zdassets.com' "$out" || die "$target $path: Zendesk missing"
		;;
	esac
	return 0
}

# --- one wrk run -----------------------------------------------------------------------------
RUN_N=0

# run SCENARIO TARGET PATH ENC ROUND [SECONDS]: appends one line to $RESULTS (unless warm-up).
run() {
	local scenario="$1" target="$2" path="$3" enc="$4" round="$5" secs="${6:-$DURATION}"
	local port pid before after out args=()
	port="$(port_of "$target")"
	pid="$(pid_of "$target")"
	while IFS= read -r h; do args+=(-H "$h"); done < <(headers_for "$path" "$enc" "$target")
	RUN_N=$((RUN_N + 1))
	out="$WORK/wrk/$RUN_N.txt"
	before="$(cpu_ticks "$pid")"
	taskset -c "$AUX_CPU" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${secs}s" --timeout "$WRK_TIMEOUT" --latency "${args[@]}" \
		"http://127.0.0.1:$port$path" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
	after="$(cpu_ticks "$pid")"
	[[ "$round" == warmup ]] && return 0
	local rps p50 p99 reqs errs stats
	# A plain assignment, so a wrk_stats that dies ends the script (set -e).
	stats="$(wrk_stats "$out")"
	read -r rps reqs p50 p99 errs <<<"$stats"
	local cpu_us
	cpu_us="$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
		'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$target" "$round" "$rps" "$p50" \
		"$p99" "$cpu_us" "$reqs" "$errs" >>"$RESULTS"
	log "  $scenario $target: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, ${cpu_us} us CPU/req${errs:+, errors $errs}"
}

# Scenarios: "name path enc targets..."
SCENARIOS=()
for p in $PAGES; do
	SCENARIOS+=("page-$p identity /page-$p.html identity origin pass sub cg-none cg-full")
	SCENARIOS+=("page-$p gzip /page-$p.html gzip origin pass subgz cg-none cg-full")
done
SCENARIOS+=("asset 2KB /asset-2k.js identity origin pass cg-none cg-full")
SCENARIOS+=("blob 256KB /blob.bin identity origin pass cg-none cg-full")

log "checking every target's answers"
for s in "${SCENARIOS[@]}"; do
	read -r _ _ path enc targets <<<"$s"
	for t in $targets; do check "$path" "$enc" "$t"; done
done

printf 'scenario\ttarget\tround\treq_s\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\terrors\n' >"$RESULTS"
log "warm-up (${WARMUP} s per target), then $ROUNDS rounds of ${DURATION} s per target"
# WARMUP=0 skips it (wrk refuses a zero duration).
if [[ "$WARMUP" != 0 ]]; then
	for s in "${SCENARIOS[@]}"; do
		read -r name enc_label path enc targets <<<"$s"
		for t in $targets; do run "$name $enc_label" "$t" "$path" "$enc" warmup "$WARMUP"; done
	done
fi
for r in $(seq 1 "$ROUNDS"); do
	log "round $r/$ROUNDS"
	for s in "${SCENARIOS[@]}"; do
		read -r name enc_label path enc targets <<<"$s"
		for t in $targets; do run "$name $enc_label" "$t" "$path" "$enc" "$r"; done
	done
done

{
	echo "Command: DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS benches/load/compare.sh"
	echo "($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(nginx -v 2>&1), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2);"
	echo "proxies pinned to CPU $PROXY_CPU (nginx 1 worker, consentgate server.workers = 1), origin nginx and wrk -t$WRK_THREADS on CPU $AUX_CPU)"
	echo
	python3 "$HERE/summarize.py" "$RESULTS" "$WORK/www" "$REPO"
} | tee "$SUMMARY"
log "raw results: $RESULTS"
log "summary:     $SUMMARY"

if [[ "$STREAM" == 1 ]]; then
	"$HERE/stream.sh" | tee -a "$SUMMARY"
fi
