#!/usr/bin/env bash
# Instructions per request of the consentgate process, counted by callgrind: repeatable where
# the wall-clock CPU figures of compare.sh move ±20 % between runs, so it can tell a 5 % change
# of one commit from noise. One command:
#
#   benches/load/instructions.sh
#
# Starts a static origin (nginx, gzip_static) and consentgate under valgrind's callgrind, both
# on loopback; for each scenario sends WARM requests (pools, caches), zeroes the counters, sends
# N requests on one keep-alive connection, and dumps: instructions / N is the proxy's cost of
# one request, kernel time excluded (callgrind counts user-space instructions only).
# valgrind's CPU model hides SHA-NI, so the consent cookie's HMAC runs sha2's portable code
# here (~28 k instructions a request, 18 % of a 5 KB full-consent request); on a real CPU it is
# ~1 % (perf). Compare builds with each other, not this figure with wall-clock CPU.
#
# Environment (defaults): N=200 WARM=50 PAGES="5k 60k" ASSET=1 (0 skips the 2 KB script, the
#   fixed cost of a subresource, without and with a consent cookie) KEEP=0 (1 keeps the scratch dir with one
#   self-contained callgrind dump per scenario, for callgrind_annotate)
#   CG_BIN: the binary to measure (default: a fresh target/release/consentgate), e.g. a build of
#   an older commit for an A/B comparison.
# Needs: nginx, valgrind (callgrind_control), curl, python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

N="${N:-200}"
WARM="${WARM:-50}"
PAGES="${PAGES:-5k 60k}"
ASSET="${ASSET:-1}"

need_tools nginx valgrind callgrind_control curl python3 taskset cargo awk
trap cleanup EXIT
trap 'exit 130' INT TERM
make_workdir
if [[ -z "${CG_BIN:-}" ]]; then
	build_release
fi
[[ -x "$CG_BIN" ]] || die "no binary at $CG_BIN"

mkdir -p "$WORK/www"
python3 "$HERE/gen_pages.py" "$REPO" "$WORK/www"

P_ORIGIN="$(free_port)"
P_CG="$(free_port)"
start_origin "$P_ORIGIN" 1

conf="$WORK/consentgate.toml"
cat >"$conf" <<EOF
[server]
listen = "127.0.0.1:$P_CG"
# One thread, as nginx runs one worker here (the single-threaded scheduler).
workers = 1

[upstream]
url = "http://127.0.0.1:$P_ORIGIN"

[consent]
key = "load-test-key-0123456789abcdef0123456789abcdef"

[receipts]
store = "off"
EOF
CONSENTGATE_LOG=warn valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
	--callgrind-out-file="$WORK/callgrind.out.%p" "$CG_BIN" --config "$conf" \
	2>"$WORK/consentgate.log" &
CG_PID="$!"
STARTED_PIDS+=("$CG_PID")
for _ in $(seq 1 300); do
	(exec 3<>"/dev/tcp/127.0.0.1/$P_CG") 2>/dev/null && break
	sleep 0.1
done
wait_port "$P_CG" "consentgate under valgrind, see $WORK/consentgate.log"
COOKIE="$(consent_cookie "$P_CG")"

# $1 requests of $2 with headers from $3 (one curl, one keep-alive connection).
send() {
	local n="$1" path="$2" headers="$3" cfg="$WORK/curl.cfg"
	: >"$cfg"
	for _ in $(seq 1 "$n"); do
		printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$P_CG" "$path" >>"$cfg"
	done
	# shellcheck disable=SC2086 # $headers is a list of -H options
	curl -sS --fail $headers -K "$cfg" || die "requests to $path failed"
}

# Instructions of dump number $1 (callgrind writes one file per dump: .<pid>.<n>, from 1).
dump_total() {
	local f="$WORK/callgrind.out.$CG_PID.$1"
	[[ -f "$f" ]] || die "callgrind wrote no dump $f"
	awk '/^summary:/ { print $2 }' "$f"
}
dumps=0

# One row: $1 label, $2 path, $3 encoding, $4 consent, $5 Sec-Fetch-Dest.
measure() {
	local headers="-H Sec-Fetch-Dest:$5 -H Accept-Encoding:$3" total
	[[ "$4" == full ]] && headers="$headers -H Cookie:$COOKIE"
	send "$WARM" "$2" "$headers"
	callgrind_control -z "$CG_PID" >/dev/null 2>&1
	send "$N" "$2" "$headers"
	callgrind_control -d "$CG_PID" >/dev/null 2>&1
	dumps=$((dumps + 1))
	total="$(dump_total "$dumps")"
	printf '| %s | %s | %s | %s |\n' "$1" "$3" "$4" "$((total / N))"
}

printf '| page | encoding | consent | instructions per request |\n|---|---|---|---:|\n'
for page in $PAGES; do
	for enc in identity gzip; do
		for consent in none full; do
			# Fetched as a browser navigates, so consentgate injects its banner or control.
			measure "$page" "/page-$page.html" "$enc" "$consent" document
		done
	done
done
if [[ "$ASSET" == 1 ]]; then
	for consent in none full; do
		measure "2k script" /asset-2k.js identity "$consent" script
	done
fi
