#!/bin/sh
# postfix.sh: a private Postfix instance in a directory of its own, listening
# on a loopback port, for comparing postkit with Postfix (scripts/bench) and
# for trying postkit's programs against a real Postfix. It never reads or
# changes the system's Postfix (/etc/postfix, /var/spool/postfix): every path
# of the instance is under DIR, and it is driven with `postfix -c DIR/etc`.
#
# Needs Debian's postfix package (apt-get install postfix; the system's own
# instance need not be configured or running) and root, because Postfix's
# master starts as root and its daemons run as the postfix user.
#
#   postfix.sh setup DIR PORT [SINK]  write the instance into DIR (created if
#                                     missing): SMTP on 127.0.0.1:PORT, mail
#                                     for demo@example.org delivered by
#                                     virtual(8) into the Maildir
#                                     DIR/mail/example.org/demo/, mail for
#                                     remote.example relayed to
#                                     127.0.0.1:SINK (default 2526),
#                                     127.0.0.0/8 may relay
#   postfix.sh start DIR              start it (postfix -c DIR/etc start)
#   postfix.sh stop DIR               stop it and wait until its master is gone
#   postfix.sh hold DIR               stop the queue manager: smtpd still
#                                     accepts into DIR/queue/incoming, nothing
#                                     is delivered (the default after setup)
#   postfix.sh release DIR            start the queue manager: deliver
#
# Layout: DIR/etc (main.cf, master.cf, maps), DIR/queue (queue_directory),
# DIR/data (data_directory), DIR/mail (virtual_mailbox_base, owned by nobody,
# whose uid and gid virtual(8) delivers as), DIR/maillog (Postfix's log).
# in_flow_delay is 0: with the queue manager stopped, Postfix's default of 1s
# (a pause before accepting each message while delivery lags behind) would
# hold every message for a second; with it running it can only slow Postfix.
# Queue files are fsynced by Postfix's cleanup(8) before smtpd answers 250,
# and Maildir files by virtual(8) before it reports success, as always.
set -eu

usage() {
	sed -n '/^#   postfix.sh/,/^# Layout/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 64
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
conf=$dir/etc

# master waits for its children when told to stop; poll its pid file so the
# caller can reuse the port at once.
wait_stopped() {
	pidfile=$dir/queue/pid/master.pid
	i=0
	while [ -s "$pidfile" ] && kill -0 "$(tr -d ' ' <"$pidfile")" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 200 ] || { echo "postfix.sh: master still running after 10s" >&2; exit 1; }
		sleep 0.05
	done
}

# qmgr SWITCH: add (on) or remove (off) the queue manager in master.cf.
qmgr() {
	postconf -c "$conf" -MX qmgr/unix
	if [ "$1" = on ]; then
		postconf -c "$conf" -M qmgr/unix='qmgr unix n - n 300 1 qmgr'
	fi
}

case $cmd in
setup)
	[ $# -ge 3 ] || usage
	port=$3
	sink=${4:-2526}
	mkdir -p "$conf" "$dir/queue" "$dir/data" "$dir/mail"
	chmod 755 "$dir" "$conf" "$dir/queue"
	chown root:root "$dir/queue"
	chown postfix:postfix "$dir/data"
	chown nobody:nogroup "$dir/mail"
	cat >"$conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtp_dns_support_level = disabled
virtual_mailbox_domains = example.org
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$conf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
transport_maps = texthash:$conf/transport
in_flow_delay = 0
biff = no
EOF
	echo "demo@example.org example.org/demo/" >"$conf/vmailbox"
	echo "remote.example smtp:[127.0.0.1]:$sink" >"$conf/transport"
	cat >"$conf/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
	# postfix start makes the queue's subdirectories (post-install
	# create-missing) and checks the configuration.
	;;
start)
	postfix -c "$conf" start
	;;
stop)
	postfix -c "$conf" stop || true
	wait_stopped
	;;
hold)
	qmgr off
	postfix -c "$conf" reload >/dev/null 2>&1 || true
	;;
release)
	qmgr on
	postfix -c "$conf" reload >/dev/null 2>&1 || true
	;;
*)
	usage
	;;
esac
