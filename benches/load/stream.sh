#!/usr/bin/env bash
# Streaming check (issue 7): a STREAM_MB (500) MiB HTML page, generated on the fly by
# stream_origin.py, fetched directly and through consentgate (no consent, as a browser navigates,
# so the whole page is rewritten). Prints consentgate's peak RSS (VmHWM) after the transfers,
# and time to first byte against the origin's: curl's time_starttransfer (first response byte)
# and, from first_byte.py, the first body byte. Medians over STREAM_RUNS (3) alternating runs.
#
#   benches/load/stream.sh
#
# Environment (defaults): STREAM_MB=500 STREAM_RUNS=3 PROXY_CPU=0 AUX_CPU=1 KEEP=0
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

STREAM_MB="${STREAM_MB:-500}"
STREAM_RUNS="${STREAM_RUNS:-3}"
PROXY_CPU="${PROXY_CPU:-0}"
AUX_CPU="${AUX_CPU:-1}"

need_tools curl python3 taskset cargo awk
trap cleanup EXIT
trap 'exit 130' INT TERM
make_workdir
build_release

P_ORIGIN="$(free_port)"
P_CG="$(free_port)"
PY="$(python_bin)"
taskset -c "$AUX_CPU" "$PY" "$HERE/stream_origin.py" "$REPO" "$P_ORIGIN" "$STREAM_MB" &
STARTED_PIDS+=("$!")
wait_port "$P_ORIGIN" "stream_origin.py"
start_consentgate "$P_CG" "$P_ORIGIN" "$PROXY_CPU"
rss_idle="$(awk '/^VmRSS:/ { print $2 }' "/proc/$CG_PID/status")"

EXPECT=$((STREAM_MB * 1024 * 1024))
MARKER='data-consentgate-src="https://www.googletagmanager.com'
HDR="Sec-Fetch-Dest: document"

# curl: "starttransfer_ms total_s bytes" for port $1; the body must be the whole page or more
# (through consentgate the banner is added, and attributes grow).
fetch() {
	local r code st tt size
	r="$(curl -sS -o /dev/null -H "$HDR" \
		-w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' \
		"http://127.0.0.1:$1/big.html")"
	read -r code st tt size <<<"$r"
	[[ "$code" == 200 ]] || die "port $1: HTTP $code"
	((size >= EXPECT)) || die "port $1: body of $size bytes, expected at least $EXPECT"
	awk -v st="$st" -v tt="$tt" -v n="$size" 'BEGIN { printf "%.3f %.2f %d\n", st * 1000, tt, n }'
}

# first_byte.py: "first_byte_ms first_body_byte_ms marker_seen"
probe() { python3 "$HERE/first_byte.py" "$1" /big.html "$MARKER" "$HDR"; }

log "streaming ${STREAM_MB} MiB: $STREAM_RUNS runs, origin and consentgate alternating"
: >"$WORK/origin.curl"
: >"$WORK/cg.curl"
: >"$WORK/origin.probe"
: >"$WORK/cg.probe"
for _ in $(seq 1 "$STREAM_RUNS"); do
	fetch "$P_ORIGIN" >>"$WORK/origin.curl"
	fetch "$P_CG" >>"$WORK/cg.curl"
	probe "$P_ORIGIN" >>"$WORK/origin.probe"
	probe "$P_CG" >>"$WORK/cg.probe"
done
hwm="$(vm_hwm_kb "$CG_PID")"
awk '{ s += $3 } END { exit !(s == 0) }' "$WORK/origin.probe" ||
	die "the origin's page already carries the rewrite marker"
awk -v n="$STREAM_RUNS" '{ s += $3 } END { exit !(s == n) }' "$WORK/cg.probe" ||
	die "consentgate did not rewrite the start of the streamed page"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$1" | median; }

o_st="$(col "$WORK/origin.curl" 1)"
c_st="$(col "$WORK/cg.curl" 1)"
o_tt="$(col "$WORK/origin.curl" 2)"
c_tt="$(col "$WORK/cg.curl" 2)"
o_body="$(col "$WORK/origin.probe" 2)"
c_body="$(col "$WORK/cg.probe" 2)"
c_size="$(col "$WORK/cg.curl" 3)"

fmt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", b - a }'; }
echo
echo "Streaming ${STREAM_MB} MiB of HTML (STREAM_MB=$STREAM_MB STREAM_RUNS=$STREAM_RUNS benches/load/stream.sh; medians)"
echo
echo "| measure | origin | consentgate | difference | target |"
echo "|---|---:|---:|---:|---|"
echo "| first response byte (curl time_starttransfer), ms | $o_st | $c_st | $(fmt "$o_st" "$c_st") | <= +10 ms |"
echo "| first body byte (first_byte.py), ms | $o_body | $c_body | $(fmt "$o_body" "$c_body") | <= +10 ms |"
echo "| whole transfer, s | $o_tt | $c_tt | $(fmt "$o_tt" "$c_tt") | |"
echo "| consentgate peak RSS (VmHWM), MiB | | $(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') | idle RSS $(awk -v k="$rss_idle" 'BEGIN { printf "%.1f", k / 1024 }') | <= 40 MiB |"
echo
echo "Body through consentgate: $c_size bytes (origin: $EXPECT); the first MiB was rewritten in every run."
