#!/usr/bin/env bash
# Load on the gateway from a second process: wrk drives synchronous Invoke of a warm echo
# function (`runtime-loop`) at 1, 16 and 64 connections and prints invocations per second
# and p50/p90/p99 latency for each. The gateway and wrk share the machine's cores.
#
#   bash benches/gateway/load.sh [SECONDS per run, default 10]
#
# Needs wrk (Debian: apt-get install wrk), python3 and curl; builds the gateway example.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
port=9317
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 2; }

cargo build -q --release --example gateway
work="$(mktemp -d)"
./target/release/examples/gateway --listen "127.0.0.1:$port" >"$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/2015-03-31/functions/" >/dev/null && break
    sleep 0.1
done

# CreateFunction with runtime-loop as the zip's bootstrap.
python3 - "$work/create.json" <<'PY'
import base64, io, json, sys, zipfile
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    archive.writestr(info, open("target/functions/bin/runtime-loop", "rb").read())
json.dump({"FunctionName": "echo", "Runtime": "provided.al2023", "Role": "r",
           "Handler": "bootstrap", "Timeout": 10,
           "Code": {"ZipFile": base64.b64encode(buffer.getvalue()).decode()}},
          open(sys.argv[1], "w"))
PY
curl -sf -X POST --data-binary "@$work/create.json" "http://127.0.0.1:$port/2015-03-31/functions" >/dev/null

echo "gateway load, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, ${seconds}s per run"
printf '%-12s %10s %10s %10s %10s %10s\n' connections "inv/s" p50 p90 p99 non-200
for connections in 1 16 64; do
    threads=$((connections < 2 ? 1 : 2))
    # Warm: as many environments as connections, created outside the measured run.
    wrk -t"$threads" -c"$connections" -d2s -s benches/gateway/invoke.lua "http://127.0.0.1:$port" >/dev/null
    line="$(wrk -t"$threads" -c"$connections" -d"${seconds}s" -s benches/gateway/invoke.lua \
        "http://127.0.0.1:$port" | grep '^RESULT')"
    field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$line"; }
    printf '%-12s %10s %7s ms %7s ms %7s ms %10s\n' "$connections" "$(field rps)" \
        "$(field p50_ms)" "$(field p90_ms)" "$(field p99_ms)" \
        "$(( $(field non200) + $(field errors) ))"
done
