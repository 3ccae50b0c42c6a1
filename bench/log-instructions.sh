#!/bin/bash
# bench/log-instructions.sh [format]: the instructions one access-log line costs, formatted and stored in the
# log's buffer (a LogSink on /dev/null), counted by valgrind's callgrind (apt-get install valgrind) in a loop
# outside a server: 64 request and response look-alikes, W lines (300,000) of warm-up, then N (300,000) between
# callgrind_control's zero and dump; the main thread's count a line (the loop's own entry object and clock read
# included). Repeats within 0.3 % here, where bench/instructions.sh's whole request moves by 1 %. The format
# defaults to Gunicorn's; LOG_FORMAT=json counts --log-format json's line (the default format: its named fields).
# Needs `npm run build`'s dist/. See docs/design.md, "Instructions per request" and "Logs".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v callgrind_control > /dev/null || { echo "bench/log-instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'exec 3>&- 2> /dev/null || true; kill $pid 2> /dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/loop.mjs" <<'JS'
import { createInterface } from 'node:readline';
const { AccessLog } = await import(process.env.ACCESS_LOG_JS);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const log = new AccessLog('/dev/null', process.env.FORMAT, undefined, process.env.LOG_FORMAT);
const reqs = [];
const ress = [];
for (let i = 0; i < 64; i++) {
  reqs.push({ method: 'GET', url: '/', httpVersion: '1.1', rawHeaders: ['Host', '127.0.0.1:8000', 'User-Agent', 'wrk'], socket: null });
  ress.push({ statusCode: 200, headersSent: true, _contentLength: 27, _hasBody: true, getHeader: () => undefined });
}
async function run(n) {
  for (let i = 0; i < n; i++) {
    const now = performance.now();
    log.log({ req: reqs[i & 63], res: ress[i & 63], start: now - 0.1, end: now, peer: '127.0.0.1' });
    // The log's 20 ms timer writes the buffer out, as in a server.
    if ((i & 1023) === 0) await new Promise((r) => setImmediate(r));
  }
}
await run(Number(process.argv[2]));
console.log('WARM');
await lines.next();
await run(Number(process.argv[3]));
console.log('DONE');
await lines.next();
process.exit(0);
JS
mkfifo "$dir/in"
n=${N:-300000}
LOG_FORMAT=${LOG_FORMAT:-text} FORMAT=${1:-'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'} ACCESS_LOG_JS=$root/dist/logging/access-log.js \
  valgrind --tool=callgrind --separate-threads=yes "--callgrind-out-file=$dir/cg" node "$dir/loop.mjs" "${W:-300000}" "$n" < "$dir/in" > "$dir/out" 2> "$dir/err" &
pid=$!
exec 3> "$dir/in"
wait_for() { for _ in $(seq 1500); do grep -q "$1" "$dir/out" && return; kill -0 $pid 2> /dev/null || break; sleep 0.2; done; echo "bench/log-instructions.sh: no $1 from the loop:" >&2; cat "$dir/err" >&2; exit 1; }
wait_for WARM
callgrind_control -z $pid > /dev/null 2>&1
echo go >&3
wait_for DONE
callgrind_control -d $pid > /dev/null 2>&1
echo end >&3
wait $pid
main=$(grep -m1 "^summary:" "$dir/cg.1-01" | awk '{ print $2 }')
echo "${1:-the default format}${LOG_FORMAT:+ (--log-format $LOG_FORMAT)}: $((main / n)) instructions a line (main thread)"
