#!/usr/bin/env bash
# clamd-test.sh starts a private clamd for the tests of internal/clamd, with
# no download: its only signature is a local one for the EICAR test string.
#
#   eval "$(scripts/clamd-test.sh)"      # start, export SIGHTLINE_TEST_CLAMD
#   go test ./internal/clamd/
#   scripts/clamd-test.sh stop DIR       # stop the clamd started in DIR
#
# Needs /usr/sbin/clamd (Debian: apt-get install clamav-daemon). On stdout it
# prints only shell lines to eval; progress goes to stderr.
set -euo pipefail

CLAMD=${CLAMD:-/usr/sbin/clamd}

if [[ ${1:-} == stop ]]; then
	dir=${2:?usage: clamd-test.sh stop DIR}
	if [[ -f $dir/clamd.pid ]]; then
		kill "$(cat "$dir/clamd.pid")" 2>/dev/null || true
	fi
	rm -rf -- "$dir"
	exit 0
fi

if [[ ! -x $CLAMD ]]; then
	echo "clamd-test.sh: $CLAMD not found; apt-get install clamav-daemon" >&2
	exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sightline-clamd.XXXXXX")
mkdir -p "$dir/db"

# The EICAR string in two pieces so that scanners do not flag this file.
eicar_a='X5O!P%@AP[4\PZX54(P^)7CC)7}$'
eicar_b='EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
md5=$(printf '%s%s' "$eicar_a" "$eicar_b" | md5sum | cut -d' ' -f1)
size=$(printf '%s%s' "$eicar_a" "$eicar_b" | wc -c)
echo "$md5:$size:Eicar-Test-Signature" >"$dir/db/sightline.hdb"
# The same string as a body signature, so that it is also found inside a file,
# such as an attachment of a MIME message.
hex=$(printf '%s%s' "$eicar_a" "$eicar_b" | od -An -tx1 | tr -d ' \n')
echo "Eicar-Test-Signature-Body:0:*:$hex" >"$dir/db/sightline.ndb"

user=$(id -un)
cat >"$dir/clamd.conf" <<EOF
DatabaseDirectory $dir/db
LocalSocket $dir/clamd.sock
LocalSocketMode 660
PidFile $dir/clamd.pid
TemporaryDirectory $dir
LogFile $dir/clamd.log
LogTime yes
Foreground no
User $user
StreamMaxLength 1M
MaxThreads 4
SelfCheck 0
Bytecode no
EOF

start=$(date +%s.%N)
if ! "$CLAMD" --config-file="$dir/clamd.conf" >&2; then
	echo "clamd-test.sh: clamd failed to start; log:" >&2
	cat "$dir/clamd.log" >&2 || true
	exit 1
fi
# clamd daemonizes once the socket is ready; wait for it to be there anyway.
for _ in $(seq 1 300); do
	[[ -S $dir/clamd.sock ]] && break
	sleep 0.1
done
if [[ ! -S $dir/clamd.sock ]]; then
	echo "clamd-test.sh: no socket after 30 s; log:" >&2
	cat "$dir/clamd.log" >&2 || true
	exit 1
fi
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v d="$dir" 'BEGIN { printf "clamd-test.sh: clamd ready in %.2f s, state in %s\n", e - s, d }' >&2

echo "export SIGHTLINE_TEST_CLAMD=unix:$dir/clamd.sock"
echo "export SIGHTLINE_TEST_CLAMD_MAX=1M"
echo "export SIGHTLINE_TEST_CLAMD_DIR=$dir"
