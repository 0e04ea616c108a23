#!/bin/sh
# Bounded load-and-soak check (issue 8), loopback only: builds the release binary, then runs
# benches/soak/soak.py (origin + consentgate + a verifying load driver). Exits non-zero on any
# response that does not match its consent state, an error in any 10 s window, a stall, RSS
# growth over the bound, or a crash.
#   benches/soak/soak.sh                          # 20 s warm-up, then 120 s at 200 connections
#   SOAK_SECS=600 SOAK_CONC=500 benches/soak/soak.sh
# Other knobs (environment): SOAK_WARM_SECS, SOAK_IDLE_SECS, SOAK_RSS_GROWTH_PCT,
# SOAK_MAX_WINDOW_ERRORS, SOAK_SEED, SOAK_BIN, SOAK_KEEP. Needs python3 (3.11+, standard library
# only); uses nginx as the origin when installed (apt-get install -y nginx), else http.server.
set -eu
cd "$(dirname "$0")/../.."
if [ -z "${SOAK_BIN:-}" ]; then
    cargo build --release --quiet
fi
# Each connection of the driver and of consentgate is a descriptor.
ulimit -n 65536 2>/dev/null || true
exec python3 benches/soak/soak.py
