#!/usr/bin/env bash
# Proxy overhead benchmark: direct vs geode sidecar vs nginx vs haproxy vs a
# stock httputil.ReverseProxy, all in front of the same 1 KiB echo server, all
# on 127.0.0.1. See e2e/bench/README.md for what is measured and how to read it.
#
# Environment knobs (defaults in brackets):
#   BENCH_TARGETS        targets to run ["direct geode nginx haproxy stock"]
#   BENCH_ROUNDS         interleaved rounds, medians are taken across them [3]
#   BENCH_DURATION       seconds per fixed-rate run [10]
#   BENCH_RPS            fixed request rate [2000]
#   BENCH_CONNS          connections [64]
#   BENCH_MAXRPS_SECONDS wrk duration for the max-rps run [5]
#   BENCH_MAXRPS_ROUNDS  in how many of the rounds max rps is measured [1]
#   BENCH_PORT_BASE      first loopback port used (uses base..base+49) [27100]
#   BENCH_WRITE          1 = update BENCHMARKS.md at the repo root [1]
#   BENCH_KEEP           1 = keep the temp dir (logs, raw JSON) [0]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
ORIG_CMD=""
for _v in $(compgen -v BENCH_ || true); do ORIG_CMD+="$_v=${!_v@Q} "; done
ORIG_CMD+="$0${*:+ ${*@Q}}"

TARGETS_REQ=${BENCH_TARGETS:-"direct geode nginx haproxy stock"}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
RPS=${BENCH_RPS:-2000}
CONNS=${BENCH_CONNS:-64}
MAXRPS_SECONDS=${BENCH_MAXRPS_SECONDS:-5}
MAXRPS_ROUNDS=${BENCH_MAXRPS_ROUNDS:-1}
PORT_BASE=${BENCH_PORT_BASE:-27100}
WRITE_MD=${BENCH_WRITE:-1}
KEEP=${BENCH_KEEP:-0}
FORTIO_VERSION=v1.63.7
PROTOS="http/1.1 h2c"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TMP=$(mktemp -d -t geode-bench.XXXXXX)
STARTED_PIDS=()

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${STARTED_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		local alive=0
		for pid in "${STARTED_PIDS[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then alive=1; fi
		done
		[[ $alive == 0 ]] && break
		sleep 0.2
	done
	for pid in "${STARTED_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [[ $KEEP == 1 ]]; then
		log "kept temp dir $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install ---
export PATH="$PATH:$(go env GOPATH)/bin"
APT_UPDATED=0
apt_install() { # pkg...
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		apt-get update -qq >"$TMP/apt-update.log" 2>&1 || die "apt-get update failed (see log)"
		APT_UPDATED=1
	fi
	log "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$TMP/apt-install.log" 2>&1 ||
		{ cat "$TMP/apt-install.log" >&2; die "apt-get install $* failed"; }
}

need_pkgs=()
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v curl >/dev/null || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then apt_install "${need_pkgs[@]}"; fi
# nginx/haproxy packages may start a system instance where there is an init
# system; we never use it, every process here is started by this script.

if ! command -v fortio >/dev/null || [[ $(fortio version 2>/dev/null) != "${FORTIO_VERSION#v}" ]]; then
	log "go install fortio.org/fortio@$FORTIO_VERSION"
	(cd "$TMP" && GOFLAGS= go install "fortio.org/fortio@$FORTIO_VERSION") || die "fortio install failed"
fi
FORTIO=$(command -v fortio)

# ------------------------------------------------------------------ build ---
log "building echo, stockproxy"
(cd "$REPO_ROOT" && go build -o "$TMP/echo" ./e2e/bench/echo && go build -o "$TMP/stockproxy" ./e2e/bench/stockproxy) ||
	die "building bench helpers failed"

TARGETS=()
NOTES=()
FAILED_TARGETS=()
for t in $TARGETS_REQ; do
	case $t in
	direct | nginx | haproxy | stock) TARGETS+=("$t") ;;
	geode)
		log "building geode (go build ./cmd/geode)"
		if (cd "$REPO_ROOT" && go build -o "$TMP/geode" ./cmd/geode) >"$TMP/geode-build.log" 2>&1; then
			TARGETS+=(geode)
		else
			cat "$TMP/geode-build.log" >&2
			log "WARNING: geode does not build; it is skipped and the run will exit non-zero"
			NOTES+=("geode: \`go build ./cmd/geode\` failed, not measured")
			FAILED_TARGETS+=(geode)
		fi
		;;
	*) die "unknown target '$t' (known: direct geode nginx haproxy stock)" ;;
	esac
done
# direct is the baseline for the ratios; always measure it.
if [[ " ${TARGETS[*]} " != *" direct "* ]]; then TARGETS=(direct "${TARGETS[@]}"); fi

# ------------------------------------------------------------------ ports ---
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
P_ECHO=$((PORT_BASE + 0))
P_GEODE_OUT=$((PORT_BASE + 10)) P_GEODE_IN=$((PORT_BASE + 11)) P_GEODE_ADMIN=$((PORT_BASE + 12))
P_NGINX_H1=$((PORT_BASE + 20)) P_NGINX_H2C=$((PORT_BASE + 21))
P_HAPROXY_H1=$((PORT_BASE + 30)) P_HAPROXY_H2C=$((PORT_BASE + 31))
P_STOCK=$((PORT_BASE + 40)) P_STOCK_ADMIN=$((PORT_BASE + 41))
for p in $P_ECHO $P_GEODE_OUT $P_GEODE_IN $P_GEODE_ADMIN $P_NGINX_H1 $P_NGINX_H2C \
	$P_HAPROXY_H1 $P_HAPROXY_H2C $P_STOCK $P_STOCK_ADMIN; do
	port_in_use "$p" && die "port 127.0.0.1:$p is in use; set BENCH_PORT_BASE"
done

# ------------------------------------------------------- process helpers ---
CLK_TCK=$(getconf CLK_TCK)

# tree_pids ROOT...: ROOT and all its descendants.
tree_pids() {
	local -A kids=()
	local f line pid rest ppid
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		rest=${line##*) }
		read -r _ ppid _ <<<"$rest"
		kids[$ppid]+="$pid "
	done
	local queue=("$@") out=() cur
	while ((${#queue[@]})); do
		cur=${queue[0]}
		queue=("${queue[@]:1}")
		out+=("$cur")
		# shellcheck disable=SC2206
		queue+=(${kids[$cur]:-})
	done
	echo "${out[@]}"
}

# tree_cpu_ticks ROOT...: utime+stime (clock ticks) summed over the tree.
tree_cpu_ticks() {
	local total=0 pid line rest a
	for pid in $(tree_pids "$@"); do
		{ read -r line <"/proc/$pid/stat"; } 2>/dev/null || continue
		rest=${line##*) }
		read -r -a a <<<"$rest"
		total=$((total + a[11] + a[12]))
	done
	echo "$total"
}

# tree_rss_kib ROOT...: VmRSS summed over the tree.
tree_rss_kib() {
	local total=0 pid v
	for pid in $(tree_pids "$@"); do
		v=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

start_bg() { # name cmd...; sets LAST_PID
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	LAST_PID=$!
	STARTED_PIDS+=("$LAST_PID")
}

# http_check URL HOST PROTO -> prints "CODE VERSION"
http_check() {
	local flag=--http1.1
	[[ $3 == h2c ]] && flag=--http2-prior-knowledge
	curl -sS -o /dev/null --max-time 2 $flag -H "Host: $2" -w '%{http_code} %{http_version}' "$1" 2>/dev/null || true
}

wait_http() { # url host pid name
	local i
	for i in $(seq 1 100); do
		kill -0 "$3" 2>/dev/null || { cat "$TMP/$4.log" >&2; return 1; }
		[[ $(http_check "$1" "$2" http/1.1) == "200 1.1" ]] && return 0
		sleep 0.1
	done
	return 1
}

# ----------------------------------------------------------- start echo ---
declare -A URL_H1 URL_H2C HOSTHDR ROOTPID
start_bg echo "$TMP/echo" -addr "127.0.0.1:$P_ECHO"
ECHO_PID=$LAST_PID
wait_http "http://127.0.0.1:$P_ECHO/" bench "$ECHO_PID" echo || die "echo did not come up"
URL_H1[direct]="http://127.0.0.1:$P_ECHO/"
URL_H2C[direct]="http://127.0.0.1:$P_ECHO/"
HOSTHDR[direct]=bench
ROOTPID[direct]=""

# --------------------------------------------------------- start proxies ---
start_geode() {
	cat >"$TMP/geode.yaml" <<EOF
region: local
listeners:
  outbound: 127.0.0.1:$P_GEODE_OUT
  inbound: 127.0.0.1:$P_GEODE_IN
  admin: 127.0.0.1:$P_GEODE_ADMIN
# the config requires app.address when listeners.inbound is set; the inbound
# side is not measured, point it at echo.
app:
  address: 127.0.0.1:$P_ECHO
regions:
  - name: local
services:
  - name: echo
    protocol: http1
    endpoints:
      local: ["127.0.0.1:$P_ECHO"]
tracing:
  exporter: none
EOF
	start_bg geode "$TMP/geode" sidecar --config "$TMP/geode.yaml"
	ROOTPID[geode]=$LAST_PID
	local i ok=0
	for i in $(seq 1 100); do
		kill -0 "$LAST_PID" 2>/dev/null || break
		if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$P_GEODE_ADMIN/ready" || true) == 200 ]]; then
			ok=1
			break
		fi
		sleep 0.1
	done
	[[ $ok == 1 ]] || return 1
	URL_H1[geode]="http://127.0.0.1:$P_GEODE_OUT/"
	URL_H2C[geode]="http://127.0.0.1:$P_GEODE_OUT/"
	HOSTHDR[geode]=echo
}

start_nginx() {
	mkdir -p "$TMP/nginx"
	local user_line=""
	# As root nginx workers would switch to "nobody", who cannot enter the
	# 0700 mktemp dir holding the temp paths; keep them as root.
	[[ $EUID == 0 ]] && user_line="user root;"
	cat >"$TMP/nginx.conf" <<EOF
$user_line
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream echo {
        server 127.0.0.1:$P_ECHO;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        # nginx 1.22 (Debian 12): "listen ... http2" without ssl is h2c with
        # prior knowledge only, hence a second port ("http2 on;" is 1.25.1+).
        listen 127.0.0.1:$P_NGINX_H1;
        listen 127.0.0.1:$P_NGINX_H2C http2;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	start_bg nginx nginx -c "$TMP/nginx.conf" -g 'daemon off;'
	ROOTPID[nginx]=$LAST_PID
	wait_http "http://127.0.0.1:$P_NGINX_H1/" bench "$LAST_PID" nginx || return 1
	URL_H1[nginx]="http://127.0.0.1:$P_NGINX_H1/"
	URL_H2C[nginx]="http://127.0.0.1:$P_NGINX_H2C/"
	HOSTHDR[nginx]=bench
}

start_haproxy() {
	cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse safe
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$P_HAPROXY_H1
    bind 127.0.0.1:$P_HAPROXY_H2C proto h2
    default_backend echo
backend echo
    server echo1 127.0.0.1:$P_ECHO
EOF
	start_bg haproxy haproxy -db -f "$TMP/haproxy.cfg"
	ROOTPID[haproxy]=$LAST_PID
	wait_http "http://127.0.0.1:$P_HAPROXY_H1/" bench "$LAST_PID" haproxy || return 1
	URL_H1[haproxy]="http://127.0.0.1:$P_HAPROXY_H1/"
	URL_H2C[haproxy]="http://127.0.0.1:$P_HAPROXY_H2C/"
	HOSTHDR[haproxy]=bench
}

start_stock() {
	start_bg stock "$TMP/stockproxy" -listen "127.0.0.1:$P_STOCK" \
		-upstream "http://127.0.0.1:$P_ECHO" -admin "127.0.0.1:$P_STOCK_ADMIN"
	ROOTPID[stock]=$LAST_PID
	wait_http "http://127.0.0.1:$P_STOCK/" bench "$LAST_PID" stock || return 1
	URL_H1[stock]="http://127.0.0.1:$P_STOCK/"
	URL_H2C[stock]="http://127.0.0.1:$P_STOCK/"
	HOSTHDR[stock]=bench
}

ACTIVE=()
for t in "${TARGETS[@]}"; do
	[[ $t == direct ]] && { ACTIVE+=(direct); continue; }
	log "starting $t"
	if "start_$t"; then
		ACTIVE+=("$t")
	else
		log "WARNING: $t failed to start (log: $(tail -n 5 "$TMP/$t.log" 2>/dev/null | tr '\n' ' '))"
		NOTES+=("$t: failed to start, not measured")
		FAILED_TARGETS+=("$t")
	fi
done

# Per (target, protocol) sanity check; a protocol a proxy cannot serve is n/a.
for t in "${ACTIVE[@]}"; do
	got=$(http_check "${URL_H1[$t]}" "${HOSTHDR[$t]}" http/1.1)
	if [[ $got != "200 1.1" ]]; then
		log "WARNING: $t HTTP/1.1 check returned '$got'"
		URL_H1[$t]=""
		NOTES+=("$t: HTTP/1.1 check returned '$got', not measured")
	fi
	got=$(http_check "${URL_H2C[$t]}" "${HOSTHDR[$t]}" h2c)
	if [[ $got != "200 2" ]]; then
		log "$t: no h2c prior knowledge (check returned '$got') -> n/a"
		URL_H2C[$t]=""
		NOTES+=("$t: h2c prior-knowledge check returned '$got', h2c is n/a")
	fi
done

# allocs TARGET -> cumulative mallocs of a Go proxy, "" otherwise
allocs() {
	case $1 in
	geode) curl -s --max-time 5 "http://127.0.0.1:$P_GEODE_ADMIN/metrics" |
		awk '$1=="go_memstats_mallocs_total"{printf "%.0f\n", $2}' || true ;;
	stock) curl -s --max-time 5 "http://127.0.0.1:$P_STOCK_ADMIN/debug/vars" | jq -r '.memstats.Mallocs' || true ;;
	*) echo "" ;;
	esac
}

url_for() { if [[ $2 == h2c ]]; then echo "${URL_H2C[$1]}"; else echo "${URL_H1[$1]}"; fi; }

fortio_load() { # target proto seconds json
	local h2=()
	[[ $2 == h2c ]] && h2=(-h2)
	"$FORTIO" load -quiet -qps "$RPS" -c "$CONNS" -t "${3}s" -uniform -r 0.00001 -p 50,90,99 \
		"${h2[@]}" -H "Host: ${HOSTHDR[$1]}" -json "$4" "$(url_for "$1" "$2")" >"$4.log" 2>&1
}

# ---------------------------------------------------------------- measure ---
RESULTS=$TMP/results.tsv # target proto round p50_ms p90_ms p99_ms requests errors cpu_us allocs rss_mib
MAXRPS=$TMP/maxrps.tsv   # target round rps
: >"$RESULTS"
: >"$MAXRPS"

run_fixed() { # target proto round
	local t=$1 p=$2 r=$3 url
	url=$(url_for "$t" "$p")
	[[ -n $url ]] || return 0
	local root=${ROOTPID[$t]} json="$TMP/raw/$t-${p//\//_}-r$r.json"
	if [[ -n $root ]] && ! kill -0 "$root" 2>/dev/null; then
		log "WARNING: $t is no longer running"
		return 0
	fi
	local c0="" c1="" a0 a1 rss=""
	a0=$(allocs "$t")
	[[ -n $root ]] && c0=$(tree_cpu_ticks "$root")
	if ! fortio_load "$t" "$p" "$DURATION" "$json"; then
		log "WARNING: fortio failed for $t $p round $r: $(tail -n 3 "$json.log" | tr '\n' ' ')"
		return 0
	fi
	[[ -n $root ]] && c1=$(tree_cpu_ticks "$root") && rss=$(tree_rss_kib "$root")
	a1=$(allocs "$t")
	local n ok p50 p90 p99
	read -r n ok p50 p90 p99 < <(jq -r '[.DurationHistogram.Count,
		(.RetCodes["200"] // 0),
		(.DurationHistogram.Percentiles[] | select(.Percentile==50) | .Value),
		(.DurationHistogram.Percentiles[] | select(.Percentile==90) | .Value),
		(.DurationHistogram.Percentiles[] | select(.Percentile==99) | .Value)] | @tsv' "$json")
	awk -v t="$t" -v p="$p" -v r="$r" -v n="$n" -v ok="$ok" -v p50="$p50" -v p90="$p90" -v p99="$p99" \
		-v c0="$c0" -v c1="$c1" -v tck="$CLK_TCK" -v a0="$a0" -v a1="$a1" -v rss="$rss" 'BEGIN {
		cpu = (c0 == "" || n == 0) ? "-" : sprintf("%.2f", (c1 - c0) / tck * 1e6 / n)
		al = (a0 == "" || a1 == "" || n == 0) ? "-" : sprintf("%.2f", (a1 - a0) / n)
		rs = (rss == "") ? "-" : sprintf("%.1f", rss / 1024)
		printf "%s\t%s\t%s\t%.4f\t%.4f\t%.4f\t%d\t%d\t%s\t%s\t%s\n", t, p, r, p50*1000, p90*1000, p99*1000, n, n-ok, cpu, al, rs
	}' >>"$RESULTS"
	tail -n 1 "$RESULTS" | awk -F'\t' '{printf "[bench] %-8s %-8s r%s p50=%sms p90=%sms p99=%sms n=%s err=%s cpu/req=%sus allocs/req=%s rss=%sMiB\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11}' >&2
}

run_maxrps() { # target round
	local t=$1 r=$2 url out rps
	url=${URL_H1[$t]}
	[[ -n $url ]] || return 0
	out="$TMP/raw/wrk-$t-r$r.txt"
	if ! wrk -t2 -c"$CONNS" -d"${MAXRPS_SECONDS}s" -H "Host: ${HOSTHDR[$t]}" "$url" >"$out" 2>&1; then
		log "WARNING: wrk failed for $t"
		return 0
	fi
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	if grep -qE 'Non-2xx|Socket errors' "$out"; then
		log "WARNING: wrk $t: $(grep -E 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')"
	fi
	printf '%s\t%s\t%s\n' "$t" "$r" "${rps:-}" >>"$MAXRPS"
	log "$t max rps (wrk, HTTP/1.1) round $r: $rps"
}

mkdir -p "$TMP/raw"
log "targets: ${ACTIVE[*]}; rounds=$ROUNDS duration=${DURATION}s rps=$RPS conns=$CONNS"
log "warm-up (1 s per target and protocol)"
for t in "${ACTIVE[@]}"; do
	for p in $PROTOS; do
		if [[ -n $(url_for "$t" "$p") ]]; then
			fortio_load "$t" "$p" 1 "$TMP/raw/warmup-$t-${p//\//_}.json" || true
		fi
	done
done

for r in $(seq 1 "$ROUNDS"); do
	log "round $r/$ROUNDS"
	for t in "${ACTIVE[@]}"; do
		for p in $PROTOS; do
			run_fixed "$t" "$p" "$r"
		done
		if ((r <= MAXRPS_ROUNDS)); then run_maxrps "$t" "$r"; fi
	done
done

# ----------------------------------------------------------------- report ---
# median FILE KEYCOLS... : reads values on stdin
median() {
	{ grep -vE '^(-|n/a|)$' || true; } | sort -g | awk '{v[NR]=$1} END {
		if (NR == 0) { print "n/a"; exit }
		if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}
med() { # target proto column(1-based in RESULTS)
	awk -F'\t' -v t="$1" -v p="$2" -v c="$3" '$1==t && $2==p {print $c}' "$RESULTS" | median
}
med_maxrps() { awk -F'\t' -v t="$1" '$1==t {print $3}' "$MAXRPS" | median; }

fmt() { # printf-format value  (n/a passes through)
	if [[ $2 == n/a || $2 == - || -z $2 ]]; then echo "${3:-n/a}"; else awk -v f="$1" -v v="$2" 'BEGIN{printf f, v}'; fi
}
ratio() { # a b
	if [[ $1 == n/a || $2 == n/a || -z $1 || -z $2 ]]; then echo n/a; else awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; fi
}

declare -A M
TABLE=$TMP/table.md
{
	echo "| target | protocol | p50 ms | p90 ms | p99 ms | p50 / direct | p99 / direct | max rps (wrk, h1) | CPU µs/req | allocs/req | RSS MiB | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TARGETS[@]}"; do
		for p in $PROTOS; do
			if [[ " ${ACTIVE[*]} " != *" $t "* ]] || ! grep -qP "^$t\t${p//\//\\/}\t" "$RESULTS"; then
				echo "| $t | $p | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"
				continue
			fi
			for c in 4 5 6 8 9 10 11; do M[$t,$p,$c]=$(med "$t" "$p" "$c"); done
			d50=$(med direct "$p" 4)
			d99=$(med direct "$p" 6)
			mr="n/a"
			[[ $p == http/1.1 ]] && mr=$(fmt "%.0f" "$(med_maxrps "$t")")
			[[ $p == h2c ]] && mr="—"
			dash="n/a"
			[[ $t == direct ]] && dash="—"
			echo "| $t | $p | $(fmt %.3f "${M[$t,$p,4]}") | $(fmt %.3f "${M[$t,$p,5]}") | $(fmt %.3f "${M[$t,$p,6]}") |" \
				"$(ratio "${M[$t,$p,4]}" "$d50") | $(ratio "${M[$t,$p,6]}" "$d99") | $mr |" \
				"$(fmt %.1f "${M[$t,$p,9]}" "$dash") | $(fmt %.1f "${M[$t,$p,10]}" "$dash") |" \
				"$(fmt %.1f "${M[$t,$p,11]}" "$dash") | $(fmt %.0f "${M[$t,$p,8]}") |"
		done
	done
} >"$TABLE"

CHECKS=$TMP/checks.md
{
	for p in $PROTOS; do
		g=${M[geode,$p,4]:-n/a} n=${M[nginx,$p,4]:-n/a} d=$(med direct "$p" 4)
		gr=$(ratio "$g" "$d") nr=$(ratio "$n" "$d")
		if [[ $gr == n/a || $nr == n/a ]]; then
			echo "- $p: geode p50 ratio ≤ 1.3 × nginx p50 ratio: SKIPPED (geode ratio $gr, nginx ratio $nr)"
		elif awk -v a="$gr" -v b="$nr" 'BEGIN{exit !(a <= 1.3 * b)}'; then
			echo "- $p: geode p50 ratio ≤ 1.3 × nginx p50 ratio: **PASS** (geode $gr ≤ $(awk -v b="$nr" 'BEGIN{printf "%.2f", 1.3*b}') = 1.3 × nginx $nr)"
		else
			echo "- $p: geode p50 ratio ≤ 1.3 × nginx p50 ratio: **FAIL** (geode $gr > $(awk -v b="$nr" 'BEGIN{printf "%.2f", 1.3*b}') = 1.3 × nginx $nr)"
		fi
	done
	for p in $PROTOS; do
		g=${M[geode,$p,9]:-n/a} h=${M[haproxy,$p,9]:-n/a}
		if [[ $g == n/a || $h == n/a || $g == - || $h == - ]]; then
			echo "- $p: geode CPU/req ≤ 3 × haproxy CPU/req: SKIPPED (geode $g µs, haproxy $h µs)"
		elif awk -v a="$g" -v b="$h" 'BEGIN{exit !(a <= 3 * b)}'; then
			echo "- $p: geode CPU/req ≤ 3 × haproxy CPU/req: **PASS** (geode $(fmt %.1f "$g") µs ≤ $(awk -v b="$h" 'BEGIN{printf "%.1f", 3*b}') µs = 3 × haproxy $(fmt %.1f "$h") µs)"
		else
			echo "- $p: geode CPU/req ≤ 3 × haproxy CPU/req: **FAIL** (geode $(fmt %.1f "$g") µs > $(awk -v b="$h" 'BEGIN{printf "%.1f", 3*b}') µs = 3 × haproxy $(fmt %.1f "$h") µs)"
		fi
	done
} >"$CHECKS"

# ----------------------------------------------------------- environment ---
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal:/{printf "%.1f", $2/1048576}' /proc/meminfo)
nginx_v=$(nginx -v 2>&1 | sed 's/^nginx version: nginx\///')
haproxy_v=$(haproxy -v 2>/dev/null | head -n 1 | awk '{print $3}')
wrk_v=$( (wrk --version 2>&1 || true) | head -n 1 | awk '{print $2}')
fortio_v=$("$FORTIO" version 2>/dev/null)
geode_commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
if [[ $geode_commit != none* ]] && [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n 1) ]]; then
	geode_commit="$geode_commit (dirty tree)"
fi

SECTION=$TMP/section.md
{
	echo "### Proxy overhead — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, ${mem_gib} GiB RAM, kernel $(uname -r)"
	echo "- $(go version | sed 's/^go version //'), nginx $nginx_v, haproxy $haproxy_v, wrk $wrk_v, fortio $fortio_v"
	echo "- geode commit: $geode_commit"
	echo "- command: \`$ORIG_CMD\`"
	echo "- load: fortio \`load -qps $RPS -c $CONNS -t ${DURATION}s -uniform -r 0.00001\` (HTTP/1.1: fortio fast client; h2c: fortio \`-h2\`, Go http2.Transport with prior knowledge, one connection per fortio connection); max rps: \`wrk -t2 -c$CONNS -d${MAXRPS_SECONDS}s\` HTTP/1.1, in the first $MAXRPS_ROUNDS round(s)"
	echo "- $ROUNDS interleaved round(s), every cell is the median across rounds; ratios are median p / median direct p of the same protocol"
	echo "- upstream: Go echo server (HTTP/1.1 + h2c, 1 KiB body); every proxy talks HTTP/1.1 with keep-alive to it"
	echo "- nginx: \`worker_processes auto\` ($(nproc) workers), upstream \`keepalive 128\`, \`keepalive_requests 1000000\` both sides, access_log off; h2c on a second port (\`listen ... http2\`, nginx 1.22)"
	echo "- haproxy: \`nbthread 2\`, \`http-reuse safe\`, no logging; h2c via \`bind ... proto h2\` on a second port"
	echo "- stock: \`httputil.ReverseProxy\` (Rewrite + SetURL), default Transport with MaxIdleConnsPerHost=128, HTTP/1.1 + h2c listener"
	echo "- geode: \`geode sidecar\`, outbound listener, \`Host: echo\`, service \`echo\` protocol http1 with one local endpoint, inbound listener unused (\`app.address\` = echo), tracing exporter none, other settings default"
	echo "- CPU µs/req: utime+stime of the proxy process tree over the fixed-rate run / requests; allocs/req: Go mallocs delta / requests; RSS: VmRSS of the process tree after the run"
	for n in "${NOTES[@]}"; do echo "- note: $n"; done
	echo
	cat "$TABLE"
	echo
	echo "Targets from the issue:"
	echo
	cat "$CHECKS"
} >"$SECTION"

echo
cat "$SECTION"
echo

if [[ $WRITE_MD == 1 ]]; then
	MD=$REPO_ROOT/BENCHMARKS.md
	BEGIN='<!-- bench:begin -->'
	END='<!-- bench:end -->'
	if [[ -f $MD ]] && grep -qF "$BEGIN" "$MD" && grep -qF "$END" "$MD"; then
		awk -v b="$BEGIN" -v e="$END" -v sec="$SECTION" '
			$0 == b { print; while ((getline l < sec) > 0) print l; skip = 1; next }
			$0 == e { skip = 0 }
			!skip { print }' "$MD" >"$TMP/BENCHMARKS.md.new"
		cat "$TMP/BENCHMARKS.md.new" >"$MD"
	else
		if [[ ! -f $MD ]]; then
			{
				echo "# Benchmarks"
				echo
				echo "Proxy overhead of \`geode sidecar\` against nginx, haproxy and a stock Go"
				echo "\`httputil.ReverseProxy\`, all in front of the same echo server on one machine."
				echo "Produced by \`make bench\` (\`e2e/bench/run.sh\`, see \`e2e/bench/README.md\`);"
				echo "the section between the markers is rewritten by each run."
				echo
			} >"$MD"
		fi
		{
			echo "$BEGIN"
			cat "$SECTION"
			echo "$END"
		} >>"$MD"
	fi
	log "wrote $MD"
fi

if ((${#FAILED_TARGETS[@]})); then
	log "FAILED: target(s) not measured: ${FAILED_TARGETS[*]}"
	exit 1
fi
exit 0
