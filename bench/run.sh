#!/usr/bin/env bash
# bench/run.sh — Tandem against nginx in one run, plus Tandem's own
# scenarios; writes docs/benchmarks.md.
#
# 1. nginx (sendfile, dav_methods PUT, tmpfs) through the anchor suite:
#    GET of a 2 KB playlist, a 200 KB and a 750 KB segment (wrk -t2 -c64/-c256),
#    PUT of 750 KB and 200 KB bodies (-c8/-c64), two ffmpeg pushes.
# 2. The same suite against a release `tandem serve` on tmpfs: GETs from the
#    merged output (a 20-entry rendition pushed by both pipelines), PUTs to an
#    input with Basic credentials, ffmpeg pushes into a channel's two inputs.
# 3. ratio.py: Tandem / nginx, matched row by row.
# 4. tandem-bench: publish latency, scale, memory, RSS per idle channel.
# 5. tandem-bench mediastore: signed PutObject/GetObject of the anchor's
#    200 KB and 750 KB segments against Tandem's MediaStore listener and a
#    second anchor nginx, interleaved in alternating rounds; then the time
#    to first byte of a STREAMING GET while its upload is in flight.
#
# Usage:  bench/run.sh            (full run, about 32 minutes)
# Env:    ANCHOR (the anchor scripts; default ../shared/bench beside the clone)
#         REPS, DURATION (passed to the anchor suite), QUICK=1 (REPS=1, short
#         scenarios: a first look, not figures to publish)
#         PRIORITIZE=1 (passed to the anchor suite, for both sides)
#         MS_ROUNDS, MS_TURN (rounds and seconds per server turn of step 5),
#         TTFB_REPS; ONLY=mediastore runs step 5 alone and prints its tables
#         instead of rewriting docs/benchmarks.md
#         CARGO_TARGET_DIR (where the release build goes; default target/)
# Needs:  nginx, wrk, ffmpeg, curl, python3; loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$ROOT/../shared/bench}
[ -x "$ANCHOR/run-suite.sh" ] || { echo "anchor scripts not found at $ANCHOR (set ANCHOR=...)" >&2; exit 1; }
OUT=$ROOT/target/bench
PORT=${TANDEM_BENCH_PORT:-18081}
MS_PORT=${TANDEM_BENCH_MS_PORT:-19010}
NGINX_MS_PORT=${NGINX_MS_PORT:-18082}
if [ "${QUICK:-0}" = 1 ]; then
  export REPS=${REPS:-1} DURATION=${DURATION:-5s} PUSH_DURATION=${PUSH_DURATION:-12}
  LAT_SEGMENTS=1000; SCALE_CHANNELS=25,50,100; SCALE_SECONDS=10; MEM_BYTES=536870912
  MS_ROUNDS=${MS_ROUNDS:-2}; MS_TURN=${MS_TURN:-2}; TTFB_REPS=${TTFB_REPS:-200}
else
  LAT_SEGMENTS=10000; SCALE_CHANNELS=25,50,100,150,200,300,350,400; SCALE_SECONDS=20; MEM_BYTES=2147483648
  MS_ROUNDS=${MS_ROUNDS:-5}; MS_TURN=${MS_TURN:-4}; TTFB_REPS=${TTFB_REPS:-2000}
fi
rm -rf "$OUT"; mkdir -p "$OUT"

(cd "$ROOT" && cargo build --release -q -p tandem -p tandem-bench)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TANDEM=$TARGET_DIR/release/tandem
BENCH=$TARGET_DIR/release/tandem-bench
CONTENT=${CONTENT:-${TMPDIR:-/tmp}/tandem-bench-content}
[ -f "$CONTENT/src-3M.ts" ] || "$ANCHOR/gen-hls-content.sh" "$CONTENT" > /dev/null

if [ "${ONLY:-}" != mediastore ]; then
  echo "== nginx" >&2
  "$ANCHOR/run-suite.sh" nginx "$OUT/nginx" > /dev/null
fi

echo "== tandem" >&2
DATA=$(mktemp -d /dev/shm/tandem-bench.XXXXXX)
printf 'max_body_bytes = 4294967296\n' > "$OUT/tandem.toml"
"$TANDEM" serve --listen "127.0.0.1:$PORT" --s3-listen off --mediastore-listen "127.0.0.1:$MS_PORT" --data "$DATA" --config "$OUT/tandem.toml" > "$OUT/tandem-banner.txt" 2> "$OUT/tandem.log" &
TPID=$!
# The MediaStore comparison's nginx: the anchor's configuration under its
# own name and port, running beside Tandem so that the two alternate.
stop_ms_nginx() { NAME=tandem-nginx-ms PORT=$NGINX_MS_PORT "$ANCHOR/nginx-anchor.sh" stop 2>/dev/null || true; }
trap 'kill $TPID 2>/dev/null || true; stop_ms_nginx; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q '^output:' "$OUT/tandem-banner.txt" 2>/dev/null && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT
TOKEN=$(cat "$DATA/admin-token")

# Step 5: MediaStore-style loads, Tandem and nginx interleaved.
mediastore_step() {
  echo "== mediastore (Tandem and nginx interleaved)" >&2
  NAME=tandem-nginx-ms PORT=$NGINX_MS_PORT "$ANCHOR/nginx-anchor.sh" start > "$OUT/nginx-ms.txt"
  local npid; npid=$(sed -n 's/^NGINX_PID=//p' "$OUT/nginx-ms.txt")
  local bodies=(--body "$CONTENT/seg200k.ts" --body "$CONTENT/seg750k.ts")
  "$BENCH" --server "$BASE" --token "$TOKEN" --pid "$TPID" mediastore \
    --mediastore "127.0.0.1:$MS_PORT" --nginx "127.0.0.1:$NGINX_MS_PORT" --nginx-pid "$npid" \
    "${bodies[@]}" --rounds "$MS_ROUNDS" --turn-secs "$MS_TURN" | tee "$OUT/mediastore.md" >&2
  "$BENCH" --server "$BASE" --token "$TOKEN" ttfb --mediastore "127.0.0.1:$MS_PORT" \
    --nginx "127.0.0.1:$NGINX_MS_PORT" "${bodies[@]}" --reps "$TTFB_REPS" | tee "$OUT/ttfb.md" >&2
  stop_ms_nginx
}
if [ "${ONLY:-}" = mediastore ]; then
  mediastore_step
  echo "ONLY=mediastore: tables in $OUT/mediastore.md and $OUT/ttfb.md; docs/benchmarks.md unchanged" >&2
  exit 0
fi
create() { curl -sf -H "Authorization: Bearer $TOKEN" -d "{\"id\":\"$1\"}" "$BASE/api/v1/channels"; }
cred() { python3 -c 'import json,sys; i=json.load(sys.stdin)["inputs"][int(sys.argv[1])]; print(i["username"]+":"+i["password"])' "$2" <<<"$1"; }
BENCH_JSON=$(create bench); PUSH_JSON=$(create bench-push)
AUTH0=$(cred "$BENCH_JSON" 0); AUTH1=$(cred "$BENCH_JSON" 1)
PUSH0=$(cred "$PUSH_JSON" 0); PUSH1=$(cred "$PUSH_JSON" 1)

# A 20-entry rendition on both pipelines; its last two segments are the
# anchor's seg200k.ts and seg750k.ts, so output paths keep nginx's basenames.
for auth in "$AUTH0:0" "$AUTH1:1"; do
  p=${auth##*:}; a=${auth%:*}
  {
    printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n'
    for k in $(seq 0 17); do printf '#EXTINF:2.000000,\ns%d.ts\n' "$k"; done
    printf '#EXTINF:2.000000,\nseg200k.ts\n#EXTINF:2.000000,\nseg750k.ts\n'
  } > "$OUT/playlist.m3u8"
  for k in $(seq 0 17); do curl -sf -u "$a" -T "$CONTENT/seg200k.ts" "$BASE/in/bench/$p/live/s$k.ts" > /dev/null; done
  curl -sf -u "$a" -T "$CONTENT/seg200k.ts" "$BASE/in/bench/$p/live/seg200k.ts" > /dev/null
  curl -sf -u "$a" -T "$CONTENT/seg750k.ts" "$BASE/in/bench/$p/live/seg750k.ts" > /dev/null
  curl -sf -u "$a" -T "$OUT/playlist.m3u8" "$BASE/in/bench/$p/live/playlist.m3u8" > /dev/null
done
for _ in $(seq 100); do curl -sf "$BASE/out/bench/live/playlist.m3u8" | grep -q seg750k && break; sleep 0.1; done

GET_BASE=$BASE \
GET_PATHS="out/bench/live/playlist.m3u8 out/bench/live/playlist/18/seg200k.ts out/bench/live/playlist/19/seg750k.ts" \
PUT_URL=$BASE/in/bench/0/put AUTH=$AUTH0 \
PUSH_A="http://$PUSH0@127.0.0.1:$PORT/in/bench-push/0/live/index.m3u8" \
PUSH_B="http://$PUSH1@127.0.0.1:$PORT/in/bench-push/1/live/index.m3u8" \
PUSH_GET=$BASE/out/bench-push/live/index.m3u8 \
SERVER_PIDS=$TPID SERVER_DESC="tandem $("$TANDEM" --version | cut -d' ' -f2), release, data on tmpfs" \
  "$ANCHOR/run-suite.sh" target "$OUT/tandem" > /dev/null

mediastore_step

echo "== scenarios" >&2
{
  "$BENCH" --server "$BASE" --token "$TOKEN" --pid "$TPID" latency --segments "$LAT_SEGMENTS"
  "$BENCH" --server "$BASE" --token "$TOKEN" --pid "$TPID" memory --bytes "$MEM_BYTES"
  "$BENCH" --server "$BASE" --token "$TOKEN" --pid "$TPID" idle-rss --channels 200
} > "$OUT/scenarios.md"
"$BENCH" --server "$BASE" --token "$TOKEN" --pid "$TPID" scale --channels "$SCALE_CHANNELS" --seconds "$SCALE_SECONDS" > "$OUT/scale.md"

DOC=$ROOT/docs/benchmarks.md
{
  sed -n '/^<!-- generated below -->/q;p' "$DOC" 2>/dev/null || true
  echo "<!-- generated below -->"
  echo
  echo "## Latest run"
  echo
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ), REPS=${REPS:-3}${QUICK:+ (QUICK)}."
  echo
  echo "### Tandem / nginx (one run, side by side)"
  echo
  python3 "$ANCHOR/ratio.py" "$OUT/tandem/results.tsv" "$OUT/nginx/results.tsv"
  echo
  echo "### Publish latency, memory, idle channels"
  echo
  echo "| scenario | load | | | | | |"
  echo "|---|---|---|---|---|---|---|"
  cat "$OUT/scenarios.md"
  echo
  echo "### Scale: channels × 2 pipelines × 3 renditions, 2 s segments of 250 KB, 20 readers a channel"
  echo
  cat "$OUT/scale.md"
  echo
  echo "### MediaStore-style PutObject / GetObject, Tandem beside nginx (interleaved: $MS_ROUNDS rounds of ${MS_TURN} s turns a row)"
  echo
  cat "$OUT/mediastore.md"
  echo
  echo "### Time to first byte of a GET (loopback, $TTFB_REPS GETs a row)"
  echo
  cat "$OUT/ttfb.md"
  echo
  echo "### Tandem, absolute"
  echo
  sed '1,/^$/d' "$OUT/tandem/report.md"
  echo
  echo "### nginx, absolute"
  echo
  sed '1,/^$/d' "$OUT/nginx/report.md"
  echo
  echo "(The UDP/RTP merge and Smooth figures are run by hand; see their sections above.)"
} > "$DOC.new"
mv "$DOC.new" "$DOC"
echo "wrote $DOC" >&2
