#!/bin/sh
# infergw-entrypoint: the image's entrypoint (deploy/Dockerfile).  The first
# argument chooses the program; the program is exec'd, so it is PID 1 and
# gets the runtime's signals itself (SIGTERM drains, SIGHUP reloads).
#
#   gateway [infergw flags]     infergw --config $INFERGW_CONFIG (default
#                               /etc/infergw/gateway.yaml) [flags]
#   agent [infergw-agent flags] infergw-agent --listen $INFERGW_AGENT_LISTEN
#                               (default 0.0.0.0:9100) --models
#                               $INFERGW_MODELS (default /opt/infergw/models)
#                               [flags]; a --listen/--models given wins
#   quantize [flags]            infergw-quantize [flags]
#   health                      the HEALTHCHECK: exit 0 when PID 1 is
#                               healthy (gateway: GET /v2/health/ready on
#                               $INFERGW_HEALTH_PORT, default 8000, answers
#                               200; agent: its listening port accepts)
#   -...                        flags for the gateway
#   anything else               exec'd as given (a shell, a debugger)
set -eu

CONFIG=${INFERGW_CONFIG:-/etc/infergw/gateway.yaml}
MODELS=${INFERGW_MODELS:-/opt/infergw/models}
AGENT_LISTEN=${INFERGW_AGENT_LISTEN:-0.0.0.0:9100}

# has_flag FLAG ARGS...: true when ARGS carry FLAG (as "FLAG V" or "FLAG=V").
has_flag() {
	flag=$1
	shift
	for a in "$@"; do
		case $a in "$flag" | "$flag"=*) return 0 ;; esac
	done
	return 1
}

# http_ready PORT: GET /v2/health/ready over bash's /dev/tcp (no curl in the
# image); true on a 200 status line within 3 s.
http_ready() {
	timeout 3 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/"$1" || exit 1
		printf "GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3
		IFS= read -r line <&3 || exit 1
		case $line in "HTTP/1.1 200"*) exit 0 ;; esac
		echo "not ready: $line" >&2
		exit 1' health "$1"
}

# tcp_open PORT: something accepts on 127.0.0.1:PORT within 3 s.
tcp_open() {
	timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/"$1"' health "$1"
}

# health: check whichever program PID 1 is.
health() {
	comm=$(cat /proc/1/comm 2>/dev/null || echo unknown)
	case $comm in
	infergw-agent)
		# the port of --listen HOST:PORT (or --listen=HOST:PORT) in its argv
		port=$(tr '\0' '\n' </proc/1/cmdline | sed -n \
			-e '/^--listen=/{s/.*:\([0-9]*\)$/\1/p;q}' \
			-e '/^--listen$/{n;s/.*:\([0-9]*\)$/\1/p;q}')
		tcp_open "${port:-9100}"
		;;
	infergw)
		http_ready "${INFERGW_HEALTH_PORT:-8000}"
		;;
	*)
		echo "health: PID 1 is $comm, not infergw or infergw-agent" >&2
		exit 1
		;;
	esac
}

cmd=${1:-gateway}
[ $# -gt 0 ] && shift
case $cmd in
gateway)
	has_flag --config "$@" || has_flag -c "$@" || set -- --config "$CONFIG" "$@"
	exec infergw "$@"
	;;
agent)
	has_flag --listen "$@" || set -- --listen "$AGENT_LISTEN" "$@"
	has_flag --models "$@" || set -- --models "$MODELS" "$@"
	exec infergw-agent "$@"
	;;
quantize)
	exec infergw-quantize "$@"
	;;
health)
	health
	;;
-*)
	set -- "$cmd" "$@"
	has_flag --config "$@" || has_flag -c "$@" || set -- --config "$CONFIG" "$@"
	exec infergw "$@"
	;;
*)
	exec "$cmd" "$@"
	;;
esac
