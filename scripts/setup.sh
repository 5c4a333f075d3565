#!/bin/sh
# postkit-setup: prepare a postkit root on a server, after `make install`
# (which installs this script as PREFIX/sbin/postkit-setup). See
# postkit-setup(8).
#
# It creates the system user and group the daemons run as, the root
# directory with the owners and modes below, etc/hostname, empty users,
# app-passwords and aliases files, and a self-signed certificate when there
# is none, then prints what is left to do. It only adds what is missing and
# puts owners and modes back (for instance on a Maildir that an older
# `mkuser add`, run as root, created for root), so it can be run at any
# time; a second run changes nothing.
#
#   ROOT/                0755 root:root
#   ROOT/etc/            0750 root:postkit     control files root-owned, group postkit, group-readable
#   ROOT/etc/tls/        0750 root:postkit     cert.pem 0644, key.pem 0640
#   ROOT/mail/           0700 postkit:postkit  the Maildirs
#   ROOT/spool/          0711 postkit:postkit  the queue; others may only pass through to maildrop/
#   ROOT/spool/maildrop/ 1733 postkit:postkit  where any local user's sendmail drops mail
#
# The daemons, running as postkit, read etc/ but cannot change it: only root
# (the admin, mkuser) writes there.
set -eu
umask 077

usage() {
	cat <<'EOF'
Usage: postkit-setup [OPTIONS]

Prepare a postkit root: the system user and group, the directories with
their owners and modes, etc/hostname, and a self-signed certificate when
none is installed. Safe to run again: it only adds what is missing and
repairs owners and modes; a second run changes nothing.

Options:
  --root DIR       the postkit root (default: $POSTKIT_ROOT, else /var/lib/postkit)
  --user NAME      the system user and group the daemons run as (default: postkit)
  --no-user        do not create the user and group: they must exist already
  --hostname NAME  this server's name for etc/hostname and the self-signed
                   certificate (default: etc/hostname, else hostname --fqdn)
  --tls-cert FILE  install FILE, a PEM certificate chain, as etc/tls/cert.pem
  --tls-key FILE   install FILE, its PEM private key, as etc/tls/key.pem
  -h, --help       show this help

Exit status: 0 done, 64 usage error, 77 not run as root, 1 anything else.
EOF
}

say() { echo "postkit-setup: $*"; }
die() {
	echo "postkit-setup: $1" >&2
	exit "${2:-1}"
}

root=${POSTKIT_ROOT:-/var/lib/postkit}
user=postkit
create_user=yes
hostname=
cert=
key=
while [ $# -gt 0 ]; do
	case $1 in
	--root | --user | --hostname | --tls-cert | --tls-key)
		[ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value; see --help" 64
		case $1 in
		--root) root=$2 ;;
		--user) user=$2 ;;
		--hostname) hostname=$2 ;;
		--tls-cert) cert=$2 ;;
		--tls-key) key=$2 ;;
		esac
		shift 2
		;;
	--no-user) create_user=no; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option $1; see --help" 64 ;;
	esac
done

case $root in
/*) root=${root%/} ;;
*) die "--root $root: give an absolute path" 64 ;;
esac
case $user in
[a-z_]*) ;;
*) die "--user $user: not a valid user name" 64 ;;
esac
case $user in
*[!a-z0-9_-]*) die "--user $user: not a valid user name" 64 ;;
esac
if [ -n "$cert$key" ] && { [ -z "$cert" ] || [ -z "$key" ]; }; then
	die "give --tls-cert and --tls-key together" 64
fi
case $hostname in
*[!A-Za-z0-9.-]*) die "--hostname $hostname: not a host name" 64 ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (it creates a system user and gives files away)" 77

changes=0
changed() {
	changes=$((changes + 1))
	say "$*"
}

# --- the user and group ---------------------------------------------------

if ! getent group "$user" >/dev/null; then
	[ "$create_user" = yes ] || die "group $user does not exist (--no-user given)"
	groupadd --system "$user"
	changed "created system group $user"
fi
if ! getent passwd "$user" >/dev/null; then
	[ "$create_user" = yes ] || die "user $user does not exist (--no-user given)"
	shell=/usr/sbin/nologin
	[ -x "$shell" ] || shell=/sbin/nologin
	[ -x "$shell" ] || shell=/bin/false
	useradd --system --gid "$user" --home-dir "$root" --no-create-home \
		--shell "$shell" --comment "postkit mail server" "$user"
	changed "created system user $user"
fi
[ "$(id -u "$user")" != 0 ] || die "user $user has uid 0: the daemons must not run as root"

# --- directories and files --------------------------------------------------

# fix PATH MODE OWNER GROUP: give an existing PATH that mode and owner.
fix() {
	have=$(stat -c '%a %U %G' "$1")
	if [ "$have" != "${2#0} $3 $4" ]; then
		chown -h "$3:$4" "$1"
		chmod "$2" "$1"
		changed "$1: mode and owner were $have, now $2 $3:$4"
	fi
}

# dir PATH MODE OWNER GROUP (missing parents get 0755).
dir() {
	if [ ! -d "$1" ]; then
		(umask 022 && mkdir -p "$1")
		chown -h "$3:$4" "$1"
		chmod "$2" "$1"
		changed "created $1 ($2 $3:$4)"
	fi
	fix "$@"
}

# file PATH MODE OWNER GROUP: an empty file if missing.
file() {
	if [ ! -e "$1" ]; then
		: >"$1"
		chown -h "$3:$4" "$1"
		chmod "$2" "$1"
		changed "created $1 ($2 $3:$4)"
	fi
	fix "$@"
}

dir "$root" 0755 root root
dir "$root/etc" 0750 root "$user"
dir "$root/etc/tls" 0750 root "$user"
dir "$root/mail" 0700 "$user" "$user"
dir "$root/spool" 0711 "$user" "$user"
dir "$root/spool/maildrop" 1733 "$user" "$user"
for f in users app-passwords aliases; do
	file "$root/etc/$f" 0640 root "$user"
done

# etc/hostname: --hostname replaces it; otherwise an existing one stays.
current=
if [ -f "$root/etc/hostname" ]; then
	current=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$root/etc/hostname" | head -n 1)
fi
if [ -n "$hostname" ] && [ "$hostname" != "$current" ] || [ -z "$current" ]; then
	name=${hostname:-$(hostname --fqdn 2>/dev/null || hostname)}
	printf '%s\n' "$name" >"$root/etc/hostname.tmp"
	chown "root:$user" "$root/etc/hostname.tmp"
	chmod 0640 "$root/etc/hostname.tmp"
	mv "$root/etc/hostname.tmp" "$root/etc/hostname"
	changed "wrote $root/etc/hostname: $name"
	current=$name
fi
file "$root/etc/hostname" 0640 root "$user"

# --- TLS --------------------------------------------------------------------

tls=$root/etc/tls
# install SRC DEST MODE: copy SRC over DEST unless they are the same.
install_file() {
	[ -r "$1" ] || die "$1: cannot read it"
	if ! cmp -s "$1" "$2"; then
		cp "$1" "$2.tmp"
		chown "root:$user" "$2.tmp"
		chmod "$3" "$2.tmp"
		mv "$2.tmp" "$2"
		changed "installed $1 as $2"
	fi
}
if [ -n "$cert" ]; then
	install_file "$cert" "$tls/cert.pem" 0644
	install_file "$key" "$tls/key.pem" 0640
elif [ ! -e "$tls/cert.pem" ] && [ ! -e "$tls/key.pem" ]; then
	if command -v openssl >/dev/null; then
		# An ECDSA P-256 certificate for the host name, as package
		# selfsigned makes for `make run`: enough for STARTTLS until a
		# real certificate (--tls-cert, --tls-key) replaces it.
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-days 825 -subj "/O=postkit self-signed/CN=$current" \
			-addext "subjectAltName=DNS:$current" -addext "extendedKeyUsage=serverAuth" \
			-keyout "$tls/key.pem.tmp" -out "$tls/cert.pem.tmp" 2>/dev/null ||
			die "openssl could not make a certificate for $current"
		chown "root:$user" "$tls/key.pem.tmp" "$tls/cert.pem.tmp"
		chmod 0640 "$tls/key.pem.tmp"
		chmod 0644 "$tls/cert.pem.tmp"
		mv "$tls/key.pem.tmp" "$tls/key.pem"
		mv "$tls/cert.pem.tmp" "$tls/cert.pem"
		changed "made a self-signed certificate for $current in $tls"
	else
		say "warning: no certificate in $tls and no openssl to make one: STARTTLS and ports 465, 993, 995 stay off until you run postkit-setup --tls-cert FILE --tls-key FILE" >&2
	fi
fi
if [ -e "$tls/cert.pem" ] && [ -e "$tls/key.pem" ]; then
	fix "$tls/cert.pem" 0644 root "$user"
	fix "$tls/key.pem" 0640 root "$user"
elif [ -e "$tls/cert.pem" ] || [ -e "$tls/key.pem" ]; then
	say "warning: $tls holds only one of cert.pem and key.pem: the daemons refuse to start until both are there" >&2
fi

# --- repairs ----------------------------------------------------------------

# Control files and directories root added (relay-clients, routes, DKIM
# keys under dkim/, made 0600 by tools running with umask 077): the daemons
# must be able to read them. Lock files are only for writers, who run as root.
old_ifs=$IFS
IFS='
'
set -f
for f in $(find "$root/etc" -mindepth 1 \( \( -type f ! -name '*.lock' \( ! -group "$user" -o ! -perm -g=r \) \) \
	-o \( -type d \( ! -group "$user" -o ! -perm -g=rx \) \) \) -print); do
	chgrp -h "$user" "$f"
	if [ -d "$f" ]; then chmod g+rx "$f"; else chmod g+r "$f"; fi
	changed "$f: now readable by group $user"
done
set +f
IFS=$old_ifs

# Everything under mail/ and spool/ belongs to the daemons' user (older
# versions of mkuser and sendmail, run by root, left root's files there),
# except the drops in maildrop/: each belongs to the user who sent it, which
# is how the queue runner knows who that was.
mine() {
	find "$root/mail" "$root/spool" -path "$root/spool/maildrop/*" -prune -o \
		\( ! -user "$user" -o ! -group "$user" \) "$@"
}
n=$(mine -print | wc -l)
if [ "$n" -gt 0 ]; then
	mine -exec chown -h "$user:$user" {} +
	changed "gave $n files and directories under $root/mail and $root/spool to $user"
fi

# The daemons must reach the root: a parent directory closed to them (a root
# under a mode 0700 home directory) would stop them all.
if command -v setpriv >/dev/null &&
	! setpriv --reuid="$user" --regid="$user" --init-groups test -r "$root/etc/hostname" -a -x "$root/mail"; then
	say "warning: user $user cannot reach $root/etc and $root/mail: check the modes of the directories above $root" >&2
fi

# --- what is left -----------------------------------------------------------

if [ "$changes" = 0 ]; then
	say "$root is set up already: nothing changed"
else
	say "$root is set up for user $user ($changes changes)"
fi
units=/var/lib/postkit
cat <<EOF

Next steps (README.md, "Installing on a Debian server", has them in full):
  1. DNS: an A/AAAA record for $current, an MX record for each mail domain
     pointing to it, SPF (v=spf1 mx -all) and a PTR record for the address.
  2. Users: mkuser add alice@example.org; mkuser alias add
     postmaster@example.org alice@example.org; and for cron and local
     programs, which mail root: mkuser alias add root@$current alice@example.org.
  3. Start the services:
       systemctl daemon-reload
       systemctl enable --now postkit-sendq.service postkit-smtp.socket \\
         postkit-submission.socket postkit-submissions.socket \\
         postkit-imap.socket postkit-imaps.socket postkit-pop3.socket postkit-pop3s.socket
  4. Certificate: replace the self-signed one with
       postkit-setup --tls-cert fullchain.pem --tls-key privkey.pem
     and restart the services.
  5. Test: swaks --server localhost --to alice@example.org
EOF
if [ "$root" != "$units" ] || [ "$user" != postkit ]; then
	cat <<EOF

The systemd units expect ROOT=$units and user postkit; for $root and
$user, add a drop-in to each service (systemctl edit postkit-smtp.service):
  [Service]
  Environment=POSTKIT_ROOT=$root
  User=$user
  Group=$user
  ReadWritePaths=$root/spool   (smtpd; pop3d and imapd: $root/mail; sendq: both)
EOF
fi
