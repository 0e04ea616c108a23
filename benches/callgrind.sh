#!/usr/bin/env bash
# Instructions per page for every rewriter bench case, counted by callgrind: repeatable on a busy
# machine where wall-clock ratios are not. Setup (catalog, policy) is measured once and subtracted.
#
#   benches/callgrind.sh [page] [iterations]     # page: 5KB | 60KB | 1MB (default 60KB, 20)
#
# Needs valgrind (apt-get install -y valgrind). Builds the bench in the bench profile first.
set -euo pipefail
cd "$(dirname "$0")/.."
page=${1:-60KB}
iters=${2:-20}
bin=$(cargo bench --bench rewriter --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*rewriter-[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() { # case iterations -> instructions
    REWRITER_BENCH="profile:$1:$page:$2" valgrind --tool=callgrind \
        --callgrind-out-file="$out/$1.$2" "$bin" 2>&1 >/dev/null |
        sed -n 's/.*refs: *//p' | tr -d ,
}

setup=$(count no_decision 0)
declare -A ir
for c in lol_html_no_handlers lol_html_noop_handlers lol_html_noop_url_selectors lol_html_body_only no_decision partial_consent full_consent full_consent_served; do
    total=$(count "$c" "$iters")
    ir[$c]=$(((total - setup) / iters))
    printf '%-24s %12d instructions per %s page\n' "$c" "${ir[$c]}" "$page"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
echo "no_decision / noop ceiling (speed ratio):      $(ratio "${ir[no_decision]}" "${ir[lol_html_noop_handlers]}")"
echo "no_decision / URL-selector ceiling (issue 7):  $(ratio "${ir[no_decision]}" "${ir[lol_html_noop_url_selectors]}")"
echo "partial_consent / noop ceiling (speed ratio):  $(ratio "${ir[partial_consent]}" "${ir[lol_html_noop_handlers]}")"
echo "full_consent / no-handler ceiling:             $(ratio "${ir[full_consent]}" "${ir[lol_html_no_handlers]}")"
echo "full_consent / body-only ceiling:              $(ratio "${ir[full_consent]}" "${ir[lol_html_body_only]}")"
echo "full_consent_served / no-handler ceiling:      $(ratio "${ir[full_consent_served]}" "${ir[lol_html_no_handlers]}")"
