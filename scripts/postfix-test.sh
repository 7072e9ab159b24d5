#!/bin/bash
# postfix-test.sh starts a private Postfix instance on 127.0.0.1 that relays
# everything to an smtp-sink dumping each message into a directory, for
# internal/gateway/queue's TestPostfixNextHop. It must run as root (Postfix's
# master does). It prints the variables to export:
#
#   eval "$(sudo scripts/postfix-test.sh start)"
#   go test -run TestPostfixNextHop ./internal/gateway/queue/
#   sudo scripts/postfix-test.sh stop
#
# Environment: SIGHTLINE_POSTFIX_DIR (default /tmp/sightline-postfix),
# SIGHTLINE_POSTFIX_PORT (default 10026), SIGHTLINE_POSTFIX_SINK_PORT
# (default 10027). Debian: apt-get install -y postfix, with
# DEBIAN_FRONTEND=noninteractive and debconf "No configuration".
set -eu

DIR=${SIGHTLINE_POSTFIX_DIR:-/tmp/sightline-postfix}
PORT=${SIGHTLINE_POSTFIX_PORT:-10026}
SINK_PORT=${SIGHTLINE_POSTFIX_SINK_PORT:-10027}

install_postfix() {
	command -v postfix >/dev/null 2>&1 && return
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >&2
}

stop() {
	if [ -f "$DIR/etc/main.cf" ]; then
		postfix -c "$DIR/etc" stop >/dev/null 2>&1 || true
	fi
	if [ -f "$DIR/sink.pid" ]; then
		kill "$(cat "$DIR/sink.pid")" 2>/dev/null || true
		rm -f "$DIR/sink.pid"
	fi
}

start() {
	install_postfix
	stop
	mkdir -p "$DIR/etc" "$DIR/spool" "$DIR/data" "$DIR/sink"
	chmod 0777 "$DIR/sink"
	chown postfix "$DIR/data"
	cp /etc/postfix/master.cf.proto "$DIR/etc/master.cf" 2>/dev/null || cp /etc/postfix/master.cf "$DIR/etc/master.cf"
	# Our SMTP service on the test port instead of port 25.
	sed -i "s/^smtp      inet/127.0.0.1:$PORT inet/" "$DIR/etc/master.cf"
	cat >"$DIR/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
myhostname = postfix.sightline.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
maillog_file_prefixes = $DIR
maillog_file = $DIR/maillog
alias_maps =
alias_database =
EOF
	echo "postlog   unix-dgram n  -       n       -       1       postlogd" >>"$DIR/etc/master.cf"
	postfix -c "$DIR/etc" check >&2
	nohup smtp-sink -u nobody -d "$DIR/sink/%Y%m%d%H%M%S." "127.0.0.1:$SINK_PORT" 128 >/dev/null 2>&1 &
	echo $! >"$DIR/sink.pid"
	postfix -c "$DIR/etc" start >&2
	# Wait (up to 10 s) for both to listen.
	i=0
	until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "postfix-test.sh: postfix or smtp-sink did not start; see $DIR/maillog" >&2; exit 1; }
		sleep 0.1
	done
	echo "# Postfix $(postconf -d -h mail_version) on 127.0.0.1:$PORT relaying to smtp-sink 127.0.0.1:$SINK_PORT"
	echo "export SIGHTLINE_TEST_POSTFIX=127.0.0.1:$PORT"
	echo "export SIGHTLINE_TEST_POSTFIX_SINKDIR=$DIR/sink"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 [start|stop]" >&2
	exit 2
	;;
esac
