#!/usr/bin/env bash
# LMTP deliveries/s into msgstore through the shared port vs straight to each
# recipient's owning shard (loadgen --shard-aware: port lmtp+1+shard), in one run,
# alternating A B A B so drift hits both alike.
#
#   bash loadgen/scripts/lmtp_shard_aware.sh        # release binaries in target/release
#   ROUNDS=2 DURATION=10 CLIENTS=16 USERS=50 SHARDS=2 SIZES=mixed BASE=47000
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-2} DURATION=${DURATION:-10} CLIENTS=${CLIENTS:-16} USERS=${USERS:-50}
SHARDS=${SHARDS:-2} SIZES=${SIZES:-mixed} BASE=${BASE:-47000}
MSGSTORE="$ROOT/target/release/msgstore"
LOADGEN="$ROOT/target/release/loadgen"
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
cat >"$WORK/msgstore.toml" <<TOML
[store]
roots = ["$WORK/data"]
[engine]
shards = $SHARDS
[listen]
imap = ""
imaps = ""
pop3 = ""
pop3s = ""
lmtp = "127.0.0.1:$BASE"
poppassd = ""
managesieve = ""
http = ""
socketmap = ""
[limits]
connections_per_ip = 100000
TOML
for ((i = 1; i <= USERS; i++)); do
    "$MSGSTORE" -c "$WORK/msgstore.toml" account add "sink$i@example.com" >/dev/null
done
"$MSGSTORE" serve -c "$WORK/msgstore.toml" 2>"$WORK/stderr" &
PID=$!
for ((i = 0; i < 600; i++)); do
    grep -q "msgstore ready" "$WORK/stderr" && break
    sleep 0.1
done
grep -q "msgstore ready" "$WORK/stderr" || { echo "msgstore did not start" >&2; exit 1; }
echo "- $(date -u '+%Y-%m-%d %H:%M:%S UTC'), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- msgstore $(git -C "$ROOT" rev-parse --short HEAD), $SHARDS shards, $USERS users, $CLIENTS clients, ${DURATION}s per run, sizes $SIZES"
run() { # run NAME ARGS...
    local name=$1 json="$WORK/$1-$2.json"
    shift 2
    "$LOADGEN" lmtp --port "$BASE" --users "$USERS" --user-format 'sink{}@example.com' \
        --clients "$CLIENTS" --duration "$DURATION" --sizes "$SIZES" "$@" \
        --json "$json" >/dev/null 2>"$json.err" || echo "$name: loadgen exit $?" >&2
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%s %.1f" % (sys.argv[2], j["counters"].get("recipients_delivered", 0) / j["elapsed_s"]))' "$json" "$name"
}
for ((r = 1; r <= ROUNDS; r++)); do
    run shared "r$r"
    run shard-aware "r$r" --shard-aware --shards "$SHARDS"
done | tee "$WORK/results"
python3 - "$WORK/results" <<'PY'
import sys, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, v = line.split()
    d[name].append(float(v))
for name, vs in d.items():
    print("%-12s deliveries/s per round: %s  mean %.1f" % (name, ", ".join("%.1f" % v for v in vs), sum(vs) / len(vs)))
PY
