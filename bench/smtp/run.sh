#!/usr/bin/env bash
# run.sh measures SMTP ingest (search-and-bench.md Part B) side by side, in
# one run: smtp-sink alone (the generator's ceiling), the Sightline gateway
# with its whole pipeline relaying to smtp-sink, Postfix relaying to
# smtp-sink, and Mailpit. For
# each -s it starts every server afresh, then runs one warm-up and RUNS timed
# rounds, the targets interleaved within each round, and prints the medians.
#
#   sudo bench/smtp/run.sh                    # from the repository root
#   sudo SESSIONS="20" RUNS=3 AV=1 bench/smtp/run.sh
#
# Environment (defaults): M=20000 messages per run, L=4096 payload bytes,
# SESSIONS="1 20 100", RUNS=3, TARGETS="sink sightline postfix mailpit",
# AV=0 (1: anti-virus on, through a private clamd from
# scripts/clamd-test.sh), DELIVERY=relay (Sightline relays every message to
# an smtp-sink of its own through an SMTP route for ALL, as Postfix relays to
# its smtp-sink; local: to its built-in local mailbox instead), PORT=22500 (first of the loopback ports used),
# OUT=a new directory under /var/tmp (raw results, logs and server state),
# MAILPIT=path of a mailpit binary (default: go install
# github.com/axllent/mailpit@latest into OUT/bin), COMMIT=what to record as
# the commit (default: git rev-parse; set it when running from an export).
#
# Every run is verified: Sightline's smtp-sink must count M more messages
# received (DELIVERY=local: its local mailbox must hold M more) and the
# tracking API must count M more delivered messages;
# Postfix must log M more "status=sent"; Mailpit's API must count M more.
# Needs root (Postfix's master and smtp-sink -u nobody), postfix, curl, jq.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/route.sh"

M=${M:-20000}
L=${L:-4096}
SESSIONS=${SESSIONS:-1 20 100}
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-sink sightline postfix mailpit}
AV=${AV:-0}
DELIVERY=${DELIVERY:-relay}
[[ $DELIVERY == relay || $DELIVERY == local ]] || { echo "run.sh: DELIVERY=$DELIVERY: want relay or local" >&2; exit 1; }
PORT=${PORT:-22500}
OUT=${OUT:-$(mktemp -d /var/tmp/sightline-smtp-bench.XXXXXX)}
chmod 755 "$OUT" # Postfix's daemons run as postfix and must reach their data directory
export SIGHTLINE_ADMIN_PASSWORD=bench-$$-$RANDOM

SINK_PORT=$PORT                  # smtp-sink alone
SL_PORT=$((PORT + 1))            # Sightline SMTP
SL_HTTP=$((PORT + 2))            # Sightline UI and API
PF_PORT=$((PORT + 3))            # Postfix
PF_SINK_PORT=$((PORT + 4))       # the smtp-sink Postfix relays to
MP_PORT=$((PORT + 5))            # Mailpit SMTP
MP_HTTP=$((PORT + 6))            # Mailpit API
DNS_PORT=$((PORT + 7))           # bench/smtp/dnsd
SL_SINK_PORT=$((PORT + 8))       # the smtp-sink Sightline relays to (DELIVERY=relay)
HZ=$(getconf CLK_TCK)

log() { echo "run.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (Postfix's master and smtp-sink -u nobody need it)"
for c in smtp-source smtp-sink postfix curl jq go; do
	command -v "$c" >/dev/null || die "$c not found"
done
[[ -f go.mod ]] && grep -q '^module github.com/sightline/sightline$' go.mod || die "run from the repository root"

mkdir -p "$OUT/bin"
log "results and state in $OUT"
go build -o "$OUT/bin/sightline" ./cmd/sightline
go build -o "$OUT/bin/dnsd" ./bench/smtp/dnsd
if [[ -z ${MAILPIT:-} ]]; then
	MAILPIT=$OUT/bin/mailpit
	[[ -x $MAILPIT ]] || GOBIN=$OUT/bin go install github.com/axllent/mailpit@latest
fi

# --- process bookkeeping -----------------------------------------------------

declare -A PID        # target → pid whose CPU and memory we read
PIDS=()               # every process this script started, to stop at exit
CLAMD_DIR= PF_DIR=

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[[ -n $PF_DIR && -f $PF_DIR/etc/main.cf ]] && postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1
	[[ -n $CLAMD_DIR ]] && scripts/clamd-test.sh stop "$CLAMD_DIR"
	wait 2>/dev/null
}
trap cleanup EXIT

wait_port() { # port: wait up to 20 s for a listener
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1; see $OUT/*.log"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cpu_ticks pid: user+system ticks of pid, plus those of its reaped children
# and its live children (Postfix's master and its daemons).
cpu_ticks() {
	local t
	t=$(awk '{print $14+$15+$16+$17}' "/proc/$1/stat")
	for c in $(pgrep -P "$1"); do
		t=$((t + $(awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# peak_kib pid: VmHWM of pid. For Postfix's master, which has many
# daemons sharing their libraries, the Pss of the master and its live
# children now instead (summing their peaks would count shared pages again
# for each process).
peak_kib() {
	if [[ $(pgrep -cP "$1") == 0 ]]; then
		awk '/^VmHWM/ {print $2}' "/proc/$1/status"
		return
	fi
	local k=0
	for p in "$1" $(pgrep -P "$1"); do
		k=$((k + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	echo "$k"
}

# written pid: bytes pid has caused to be written to storage.
written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }

# --- servers -------------------------------------------------------------------

start_dns() {
	"$OUT/bin/dnsd" -addr "127.0.0.1:$DNS_PORT" >"$OUT/dnsd.log" 2>&1 &
	PIDS+=($!)
	wait_port "$DNS_PORT"
}

start_sink() {
	smtp-sink -u nobody -m 2000 "127.0.0.1:$SINK_PORT" 2048 >"$OUT/sink.log" 2>&1 &
	PID[sink]=$!
	PIDS+=($!)
	wait_port "$SINK_PORT"
}

start_sightline() { # dir
	local args=(gateway --data "$1" --smtp-addr "127.0.0.1:$SL_PORT" --gateway-addr "127.0.0.1:$SL_HTTP"
		--hostname gw.bench.test --dns "127.0.0.1:$DNS_PORT" --log-level warn)
	[[ -n $CLAMD_ADDR ]] && args+=(--clamd "$CLAMD_ADDR")
	"$OUT/bin/sightline" "${args[@]}" >"$1.log" 2>&1 &
	PID[sightline]=$!
	PIDS+=($!)
	wait_port "$SL_PORT"
	wait_port "$SL_HTTP"
	[[ $DELIVERY == relay ]] && sightline_relay "$1"
	SL_SINCE=$(date -u +%Y-%m-%dT%H:%M)
}

# sightline_relay dir: start Sightline's smtp-sink (-c: it prints its
# running counts, read by sightline_relayed) and route all mail to it, by
# the gateway's configuration API as an administrator would.
sightline_relay() {
	smtp-sink -c -u nobody -m 2000 "127.0.0.1:$SL_SINK_PORT" 2048 >"$1.sink.log" 2>&1 &
	PID[sightline_sink]=$!
	PIDS+=($!)
	wait_port "$SL_SINK_PORT"
	route_all_to "http://127.0.0.1:$SL_HTTP/api/v1/config" "admin:$SIGHTLINE_ADMIN_PASSWORD" \
		"127.0.0.1:$SL_SINK_PORT" "bench: relay to smtp-sink"
}

start_postfix() { # dir
	local d=$1
	mkdir -p "$d/etc" "$d/spool" "$d/data"
	chown postfix "$d/data"
	cp /etc/postfix/master.cf.proto "$d/etc/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$d/etc/master.cf"
	sed -i "s/^smtp      inet/127.0.0.1:$PF_PORT inet/" "$d/etc/master.cf"
	echo "postlog   unix-dgram n  -       n       -       1       postlogd" >>"$d/etc/master.cf"
	cat >"$d/etc/main.cf" <<-EOF
		compatibility_level = 3.6
		queue_directory = $d/spool
		data_directory = $d/data
		myhostname = postfix.bench.test
		mydestination =
		inet_interfaces = 127.0.0.1
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		smtpd_relay_restrictions = permit_mynetworks, reject
		relayhost = [127.0.0.1]:$PF_SINK_PORT
		smtp_tls_security_level = none
		maillog_file = $d/maillog
		maillog_file_prefixes = $d
		alias_maps =
		alias_database =
	EOF
	postfix -c "$d/etc" check >&2
	smtp-sink -u nobody -m 2000 "127.0.0.1:$PF_SINK_PORT" 2048 >"$d.sink.log" 2>&1 &
	PID[postfix_sink]=$!
	PIDS+=($!)
	wait_port "$PF_SINK_PORT"
	postfix -c "$d/etc" start >&2
	wait_port "$PF_PORT"
	PID[postfix]=$(head -1 "$d/spool/pid/master.pid" | tr -d ' ')
}

stop_postfix() { # dir
	postfix -c "$1/etc" stop >&2 || true
	for _ in $(seq 100); do
		kill -0 "${PID[postfix]}" 2>/dev/null || break
		sleep 0.1
	done
	stop postfix_sink
}

start_mailpit() { # dir
	mkdir -p "$1"
	"$MAILPIT" --smtp "127.0.0.1:$MP_PORT" --listen "127.0.0.1:$MP_HTTP" --database "$1/mailpit.db" \
		--max 0 --quiet >"$1.log" 2>&1 &
	PID[mailpit]=$!
	PIDS+=($!)
	wait_port "$MP_PORT"
	wait_port "$MP_HTTP"
}

stop() { # target: and its smtp-sink, if it has one of its own
	kill "${PID[$1]}"
	wait "${PID[$1]}" 2>/dev/null || true
	if [[ -n ${PID[${1}_sink]:-} ]]; then
		stop "${1}_sink"
		unset "PID[${1}_sink]"
	fi
}

# --- stored counts (B.2.5) -----------------------------------------------------

sightline_mailbox() { find "$SL_DIR/gateway/mailbox" -path '*/new/*' -type f 2>/dev/null | wc -l; }

# sightline_relayed: messages Sightline's smtp-sink has received, from the
# last "mesg=N" of its counters (written after each session, ended by \r).
sightline_relayed() { tr '\r' '\n' <"$SL_DIR.sink.log" | awk -F'mesg=' 'NF > 1 { n = $2 + 0 } END { print n + 0 }'; }

sightline_tracked() {
	"$OUT/bin/sightline" track --gateway "http://127.0.0.1:$SL_HTTP" --since "$SL_SINCE" \
		--status DELIVERED --limit 1 --json | jq .meta.totalCount
}

postfix_sent() { grep -c 'status=sent' "$PF_DIR/maillog" 2>/dev/null || true; }

mailpit_total() { curl -fsS "http://127.0.0.1:$MP_HTTP/api/v1/messages?limit=1" | jq .total; }

count() { # target: messages the target has stored (or relayed) so far
	case $1 in
	sightline) # delivered, and in the mailbox (DELIVERY=local)
		if [[ $DELIVERY == relay ]]; then sightline_tracked; else echo "$(sightline_mailbox)/$(sightline_tracked)"; fi ;;
	sightline_sink) sightline_relayed ;; # checked once the others have settled (below)
	postfix) postfix_sent ;;
	mailpit) mailpit_total ;;
	sink) echo 0 ;;
	esac
}

# sightline_unindexed: tracking records the gateway has yet to add to its
# substring index (it does so once ingest pauses).
sightline_unindexed() {
	curl -fsS -u "admin:$SIGHTLINE_ADMIN_PASSWORD" "http://127.0.0.1:$SL_HTTP/metrics" |
		awk '$1 == "sightline_tracking_unindexed_messages" { print $2 }'
}

# settle target: for Sightline, wait (up to 10 min) until its substring index
# has caught up, so that its indexing never runs during another target's run.
settle() {
	local i
	[[ $1 == sightline ]] || return 0
	for i in $(seq 6000); do
		[[ $(sightline_unindexed) == 0 ]] && return 0
		sleep 0.1
	done
}

# expect target before: wait (up to 10 min) until the target's count is
# before + M (each part of it, for Sightline), and print "ok" or the count.
expect() {
	local want have i
	if [[ $1 == sink ]]; then echo "n/a"; return; fi
	want=$(awk -v b="$2" -v m="$M" 'BEGIN { n = split(b, p, "/"); for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "/" : ""), p[i] + m }')
	for i in $(seq 600); do
		have=$(count "$1")
		[[ $have == "$want" ]] && { echo "ok"; return; }
		sleep 1
	done
	echo "FAIL:$have!=$want"
}

# accept_buckets: Sightline's sightline_smtp_accept_seconds histogram as
# "le count" lines (cumulative counts).
accept_buckets() {
	curl -fsS -u "admin:$SIGHTLINE_ADMIN_PASSWORD" "http://127.0.0.1:$SL_HTTP/metrics" |
		awk -F'[{}" ]+' '$1 == "sightline_smtp_accept_seconds_bucket" { print $3, $4 }'
}

# accept_quantiles before after: p50/p95/p99 in ms of the acceptances between
# two accept_buckets readings, interpolated linearly within a bucket as
# Prometheus's histogram_quantile does.
accept_quantiles() {
	awk 'NR == FNR { b[$1] = $2; next }
	{ le[++n] = $1; c[n] = $2 - b[$1] }
	function q(p,    i, r, lo, clo) {
		r = p * c[n]
		for (i = 1; i <= n; i++) if (c[i] >= r) break
		if (le[i] == "+Inf") return sprintf(">%g", le[i - 1] * 1000)
		lo = i > 1 ? le[i - 1] : 0; clo = i > 1 ? c[i - 1] : 0
		return sprintf("%.1f", 1000 * (lo + (le[i] - lo) * (c[i] > clo ? (r - clo) / (c[i] - clo) : 1)))
	}
	END { if (c[n] > 0) printf "%s/%s/%s", q(.5), q(.95), q(.99); else printf "–" }' "$1" "$2"
}

# --- one measurement ---------------------------------------------------------

RESULTS=$OUT/results.tsv
[[ -f $RESULTS ]] || printf 's\tround\ttarget\telapsed_s\tmsg_per_s\tcpu_pct\tpeak_rss_mib\twritten_kib_per_msg\tcheck\tsettle_s\taccept_ms_p50_p95_p99\n' >"$RESULTS"

point() { # s round target port
	local s=$1 round=$2 target=$3 port=$4 pid before relayed= t0 t1 c0 c1 w0=0 w1=0 el check settled rc=0 lat="–"
	pid=${PID[$target]}
	before=$(count "$target")
	[[ $target == sightline && $DELIVERY == relay ]] && relayed=$(count sightline_sink)
	[[ $target == sightline ]] && accept_buckets >"$OUT/buckets.before"
	c0=$(cpu_ticks "$pid")
	[[ $target == postfix ]] || w0=$(written "$pid")
	t0=$(date +%s.%N)
	smtp-source -s "$s" -m "$M" -l "$L" -M gen.test -f a@sender.test -t b@corp.test -N "127.0.0.1:$port" \
		>"$OUT/source.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$pid")
	[[ $target == postfix ]] || w1=$(written "$pid")
	if [[ $target == sightline ]]; then
		accept_buckets >"$OUT/buckets.after"
		lat=$(accept_quantiles "$OUT/buckets.before" "$OUT/buckets.after")
	fi
	if [[ $rc != 0 ]]; then
		check="smtp-source exit $rc: $(tail -1 "$OUT/source.log")"
	else
		check=$(expect "$target" "$before")
	fi
	settle "$target"
	# settle_s: from the end of smtp-source until every message is stored
	# (delivered and tracked) and, for Sightline, indexed for search.
	settled=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	# The sink counts a message when its session ends: Sightline keeps
	# delivery connections open for 5 s of idleness, so it is checked after
	# settle_s, which the tracked deliveries give.
	if [[ $check == ok && -n $relayed ]]; then
		check=$(expect sightline_sink "$relayed")
		[[ $check == ok ]] || check="sink: $check"
	fi
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	printf '%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%.1f\t%s\t%s\t%s\n' "$s" "$round" "$target" "$el" \
		"$(awk -v m="$M" -v e="$el" 'BEGIN { print m / e }')" \
		"$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v e="$el" 'BEGIN { print 100 * c / hz / e }')" \
		"$(awk -v k="$(peak_kib "$pid")" 'BEGIN { print k / 1024 }')" \
		"$(awk -v w=$((w1 - w0)) -v m="$M" 'BEGIN { print w / 1024 / m }')" \
		"$check" "$settled" "$lat" | tee -a "$RESULTS" >&2
}

# --- main --------------------------------------------------------------------

CLAMD_ADDR=
if [[ $AV == 1 ]]; then
	eval "$(env -u CLAMD scripts/clamd-test.sh)"
	CLAMD_ADDR=$SIGHTLINE_TEST_CLAMD
	CLAMD_DIR=${CLAMD_ADDR#unix:}
	CLAMD_DIR=${CLAMD_DIR%/clamd.sock}
fi

for p in $(seq "$PORT" $((PORT + 8))); do
	port_free "$p" || die "127.0.0.1:$p is taken; set PORT"
done
start_dns

{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "commit: ${COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')}"
	echo "go: $(go version | awk '{print $3}')"
	echo "postfix: $(postconf -d -h mail_version)"
	echo "mailpit: $("$MAILPIT" version 2>/dev/null | head -1)"
	echo "cpu: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "M=$M L=$L SESSIONS=$SESSIONS RUNS=$RUNS AV=$AV DELIVERY=$DELIVERY"
} | tee "$OUT/env.txt" >&2

for s in $SESSIONS; do
	SL_DIR=$OUT/s$s/sightline PF_DIR=$OUT/s$s/postfix MP_DIR=$OUT/s$s/mailpit
	mkdir -p "$OUT/s$s"
	for t in $TARGETS; do
		case $t in
		sink) start_sink ;;
		sightline) start_sightline "$SL_DIR" ;;
		postfix) start_postfix "$PF_DIR" ;;
		mailpit) start_mailpit "$MP_DIR" ;;
		*) die "unknown target $t" ;;
		esac
	done
	for round in warmup $(seq "$RUNS"); do
		for t in $TARGETS; do
			case $t in
			sink) port=$SINK_PORT ;; sightline) port=$SL_PORT ;; postfix) port=$PF_PORT ;; mailpit) port=$MP_PORT ;;
			esac
			point "$s" "$round" "$t" "$port"
		done
	done
	for t in $TARGETS; do
		if [[ $t == postfix ]]; then stop_postfix "$PF_DIR"; else stop "$t"; fi
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt" >&2

# Medians of the timed rounds; peak RSS is the highest of the series (it
# covers the warm-up; for Postfix, the highest Pss sum after a run), ratios
# are of medians.
echo
awk -F'\t' '
NR > 1 && $2 != "warmup" {
	k = $1 SUBSEP $3
	n[k]++; rate[k, n[k]] = $5; lat[k, n[k]] = $11; cpu[k, n[k]] = $6; wr[k, n[k]] = $8; st[k, n[k]] = $10
	if ($7 > rss[k]) rss[k] = $7
	if ($9 != "ok" && $9 != "n/a") bad[k]++
	if (!($1 in seenS)) { seenS[$1] = 1; ss[++ns] = $1 }
	if (!($3 in seenT)) { seenT[$3] = 1; ts[++nt] = $3 }
}
function median(a, k, m,    i, j, v, t) {
	for (i = 1; i <= m; i++) v[i] = a[k, i] + 0
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	printf "| -s | target | msg/s (median) | CPU %% | peak RSS MiB | disk KiB/msg | settle s | accept ms p50/p95/p99 | failed checks |\n|---|---|---|---|---|---|---|---|---|\n"
	for (i = 1; i <= ns; i++) for (j = 1; j <= nt; j++) {
		k = ss[i] SUBSEP ts[j]
		if (!n[k]) continue
		med[k] = median(rate, k, n[k])
		# the server-side latency of the round whose rate is nearest the median
		ml = ""; best = -1
		for (r = 1; r <= n[k]; r++) {
			d = rate[k, r] - med[k]; if (d < 0) d = -d
			if (best < 0 || d < best) { best = d; ml = lat[k, r] }
		}
		if (ml == "–") ml = ""
		printf "| %s | %s | %.0f | %.0f | %.0f | %s | %.1f | %s | %d |\n", ss[i], ts[j], med[k], median(cpu, k, n[k]), rss[k],
			(ts[j] == "postfix" || ts[j] == "sink") ? "–" : sprintf("%.1f", median(wr, k, n[k])), median(st, k, n[k]), ml, bad[k]
	}
	print ""
	for (i = 1; i <= ns; i++) {
		sl = med[ss[i] SUBSEP "sightline"]; pf = med[ss[i] SUBSEP "postfix"]; mp = med[ss[i] SUBSEP "mailpit"]
		if (sl && pf && mp) printf "-s %s: Sightline/Postfix %.2f, Sightline/Mailpit %.2f\n", ss[i], sl / pf, sl / mp
	}
}' "$RESULTS" | tee "$OUT/summary.md"
