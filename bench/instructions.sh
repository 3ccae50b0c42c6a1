#!/bin/bash
# bench/instructions.sh plain|tunicorn [tunicorn flags...]: the instructions one serving process runs per
# keep-alive request, counted by valgrind's callgrind (apt-get install valgrind; wrk too), for comparing builds
# and settings where requests/s and CPU time are lost in this machine's noise (docs/design.md, "Instructions
# per request"). `plain` is one node:http process serving the benchmark's app; `tunicorn` is `npm run build`'s
# dist/ with one worker (`-w 1`), whose own process is counted. Both run under callgrind (some 50 times
# slower), get WARM s of `wrk -t1 -c16` (40), then DUR s (20) between callgrind_control's zero and dump.
# Prints the requests served, the main thread's instructions per request (the steady figure: 1 % between runs
# here) and all threads' (V8's compiler and collector threads too: they move by 10 % and more).
# APP=file serves another app (default: bench/servers/apps/listener.mjs). LOAD=post sends the benchmark's
# POST /echo (15 KB of JSON, echoed) instead of GET /; LOAD=close sends GET / with `Connection: close` (a
# connection a request). Loopback and port 0 only.
set -euo pipefail
what=${1:?usage: bench/instructions.sh plain|tunicorn [tunicorn flags...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
app=${APP:-$root/bench/servers/apps/listener.mjs}
for tool in valgrind callgrind_control wrk; do
  command -v $tool > /dev/null || { echo "bench/instructions.sh: $tool is not installed (apt-get install valgrind wrk)" >&2; exit 2; }
done
dir=$(mktemp -d)
log=$dir/server.log
load=(-s "$dir/load.lua")
url_path=/
case ${LOAD:-get} in
  get) echo > "$dir/load.lua" ;;
  close) echo 'wrk.headers["Connection"] = "close"' > "$dir/load.lua" ;;
  post)
    # The same body as bench/run.ts's post load.
    node -e 'process.stdout.write(JSON.stringify({ items: Array.from({ length: 400 }, (_, i) => ({ id: i, name: `item-${i}`, ok: i % 2 === 0 })) }))' > "$dir/body.json"
    printf 'wrk.method = "POST"\nlocal f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n' "$dir/body.json" > "$dir/load.lua"
    url_path=/echo
    ;;
  *) echo "bench/instructions.sh: LOAD is get, post or close, not $LOAD" >&2; exit 2 ;;
esac
vg=(valgrind --tool=callgrind --smc-check=all-non-file --trace-children=yes --separate-threads=yes "--callgrind-out-file=$dir/cg.%p")
case $what in
  plain)
    cat > "$dir/plain.mjs" <<'JS'
import http from 'node:http';
const { default: listener } = await import(process.env.APP_FILE);
const s = http.createServer({ noDelay: true }, listener).listen(0, '127.0.0.1', () => console.log(`Listening at: http://127.0.0.1:${s.address().port}`));
process.on('SIGTERM', () => process.exit(0));
JS
    APP_FILE=$app "${vg[@]}" node "$dir/plain.mjs" > "$log" 2>&1 &
    ;;
  tunicorn) "${vg[@]}" node "$root/dist/cli/main.js" -w 1 -b 127.0.0.1:0 "$@" "$app" > "$log" 2>&1 & ;;
  *) echo "bench/instructions.sh: plain or tunicorn, not $what" >&2; exit 2 ;;
esac
pid=$!
cleanup() { kill -TERM $pid 2> /dev/null || true; sleep 2; pkill -KILL -P $pid 2> /dev/null || true; kill -KILL $pid 2> /dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
port=
for _ in $(seq 600); do
  port=$(grep -o 'Listening at: http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  if [ -n "$port" ] && { [ "$what" = plain ] || grep -q 'Booting worker' "$log"; }; then break; fi
  sleep 0.2
done
[ -n "$port" ] || { echo "bench/instructions.sh: the server did not start:" >&2; cat "$log" >&2; exit 1; }
target=$pid
[ "$what" = plain ] || target=$(pgrep -P $pid | head -1)
wrk -t1 -c16 -d"${WARM:-40}"s --timeout 10s "${load[@]}" "http://127.0.0.1:$port$url_path" > /dev/null
callgrind_control -z $target > /dev/null
n=$(wrk -t1 -c16 -d"${DUR:-20}"s --timeout 10s "${load[@]}" "http://127.0.0.1:$port$url_path" | grep -o '[0-9]* requests in' | grep -o '^[0-9]*')
callgrind_control -d $target > /dev/null
# The dump writes a file a thread: wait until the last thread's is whole.
for _ in $(seq 50); do [ "$(ls "$dir"/cg.$target.1-* 2> /dev/null | wc -l)" -gt 1 ] && ! grep -L "^summary:" "$dir"/cg.$target.1-* | grep -q . && break; sleep 0.2; done
# A file's count: its `summary:` line (callgrind writes `totals:` with the same figure after it).
sum() { for f in "$@"; do grep -m1 '^summary:' "$f"; done | awk '{ s += $2 } END { printf "%d", s }'; }
main=$(sum "$dir/cg.$target.1-01")
all=$(sum "$dir"/cg.$target.1-*)
[ -n "${KEEP:-}" ] && ls -la "$dir" >&2
echo "$what: $n requests; main thread $((main / n)) instructions a request, all threads $((all / n))"
