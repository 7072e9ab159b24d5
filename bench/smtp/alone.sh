#!/usr/bin/env bash
# alone.sh measures one gateway binary by itself, for comparing two builds of
# the gateway (run.sh compares Sightline with its peers). It starts the gateway
# on a fresh data directory, routes all mail to an smtp-sink through the
# configuration API (as run.sh's DELIVERY=relay), sends ROUNDS runs of M
# messages with smtp-source -s S, and prints per round the acceptance rate,
# the gateway's CPU per message while accepting, and its spool's group commits
# (from /metrics); then the CPU per message once everything is delivered and
# tracked.
#
#   bench/smtp/alone.sh BINARY                     # from the repository root
#   S=100 ROUNDS=3 bench/smtp/alone.sh /tmp/sl-a
#   PERF=10 bench/smtp/alone.sh /tmp/sl-b          # perf record the last round's first 10 s
#
# Environment (defaults): S=20, M=20000, L=4096, ROUNDS=2, SETTLE=8 (seconds
# to wait after the last round for the pipeline to finish), PORT=23500 (first
# of the loopback ports used), PERF (seconds; writes OUT/perf.data),
# OUT=a new directory under /var/tmp. Needs smtp-source, smtp-sink, curl, jq,
# bc, go; perf for PERF; root for smtp-sink -u nobody.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/route.sh"

BIN=${1:?usage: alone.sh BINARY}
S=${S:-20} M=${M:-20000} L=${L:-4096} ROUNDS=${ROUNDS:-2} SETTLE=${SETTLE:-8} PORT=${PORT:-23500}
OUT=${OUT:-$(mktemp -d /var/tmp/sightline-alone.XXXXXX)}
SMTP=$PORT HTTP=$((PORT + 1)) DNS=$((PORT + 2)) SINK=$((PORT + 3))
export SIGHTLINE_ADMIN_PASSWORD=alone-$$-$RANDOM
auth=admin:$SIGHTLINE_ADMIN_PASSWORD
api=http://127.0.0.1:$HTTP/api/v1

[[ -f go.mod ]] && grep -q '^module github.com/sightline/sightline$' go.mod || { echo "alone.sh: run from the repository root" >&2; exit 1; }
go build -o "$OUT/dnsd" ./bench/smtp/dnsd

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "alone.sh: nothing listens on 127.0.0.1:$1; see $OUT" >&2
	exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$GW/stat"; }

"$OUT/dnsd" -addr "127.0.0.1:$DNS" >"$OUT/dnsd.log" 2>&1 &
PIDS+=($!)
smtp-sink -u nobody -m 2000 "127.0.0.1:$SINK" 2048 >"$OUT/sink.log" 2>&1 &
PIDS+=($!)
"$BIN" gateway --data "$OUT/data" --smtp-addr "127.0.0.1:$SMTP" --gateway-addr "127.0.0.1:$HTTP" \
	--hostname gw.bench.test --dns "127.0.0.1:$DNS" --log-level warn >"$OUT/gateway.log" 2>&1 &
GW=$!
PIDS+=($GW)
wait_port "$SMTP"
wait_port "$HTTP"
wait_port "$SINK"
route_all_to "$api/config" "$auth" "127.0.0.1:$SINK" "alone.sh: relay to smtp-sink"

for r in $(seq "$ROUNDS"); do
	t0=$(ticks) perf=
	if [[ -n ${PERF:-} && $r == "$ROUNDS" ]]; then
		perf record -e cpu-clock -g -p "$GW" -o "$OUT/perf.data" -- sleep "$PERF" >/dev/null 2>&1 &
		perf=$!
	fi
	start=$(date +%s.%N)
	smtp-source -s "$S" -m "$M" -l "$L" -f a@sender.test -t b@corp.test "127.0.0.1:$SMTP"
	end=$(date +%s.%N)
	t1=$(ticks)
	spool=$(curl -fsS -u "$auth" "http://127.0.0.1:$HTTP/metrics" | awk '
		/^sightline_spool_commits_total/ {c = $2} /^sightline_spool_operations_total/ {o = $2}
		END {if (c) printf "spool: %d commits, %.1f operations each", c, o / c}')
	printf 'round %d: %.0f msg/s, %.3f ms CPU per message while accepting; %s\n' "$r" \
		"$(bc -l <<<"$M / ($end - $start)")" "$(bc -l <<<"($t1 - $t0) * 1000 / $(getconf CLK_TCK) / $M")" "$spool"
	[[ -z $perf ]] || wait "$perf"
done
sleep "$SETTLE"
printf 'all rounds, delivered and tracked: %.3f ms CPU per message; peak RSS %d MiB\n' \
	"$(bc -l <<<"$(ticks) * 1000 / $(getconf CLK_TCK) / ($M * $ROUNDS)")" "$(($(awk '/^VmHWM/ {print $2}' "/proc/$GW/status") / 1024))"
echo "state and logs in $OUT"
