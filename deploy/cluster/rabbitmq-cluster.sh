#!/usr/bin/env bash
# A three-node RabbitMQ cluster on one machine, beside the default broker on 5672 (which
# this script never touches): billflow-a@localhost, billflow-b@localhost,
# billflow-c@localhost on AMQP ports 5681/5682/5683 (BILLFLOW_CLUSTER_PORT_A/_B/_C), Erlang
# distribution on AMQP port + 20000, management off, each with its own config, data, log
# and pid files under DIR. Run as root (rabbitmq-server then runs as the rabbitmq user, whose
# Erlang cookie all three nodes share) or as the rabbitmq user.
#
# Replication: quorum queues get 3 members from RabbitMQ's quorum_cluster_size (set to 3
# in each node's advanced.config) and streams from their default initial cluster size (all
# nodes); both are fixed at declaration, so the cluster is complete before any URL is
# printed. A policy cannot set either on RabbitMQ 3.10.
#
# Network partition on this machine (checked on the CI VM, kernel 6.x, root): no iptables
# or nft binaries (the kernel has nf_tables, the tools are not installed); tc has no drop
# action (act_gact missing) and no prio/netem qdiscs; `ip netns` and veth work, but the
# nodes are named @localhost, and a node in its own namespace would need a routable host
# name (long names) to stay in the cluster. What works is policy routing: `partition NODE`
# installs `ip rule ... prohibit` rules for the node's distribution port (both directions)
# and for the loopback address its outgoing distribution connections are bound to
# (127.0.0.1X, via inet_dist_connect_options), ahead of the `local` table (whose rule is
# moved from priority 0 to 100 while a partition is on). Inter-node traffic of that node
# fails; AMQP clients and the CLI on 127.0.0.1 still reach its AMQP port; the CLI cannot
# reach the partitioned node (it talks distribution). net_ticktime is 10 s, so the others
# see it down within ~10-20 s, and cluster_partition_handling = pause_minority pauses it.
# `heal NODE` removes the rules (and restores the local rule when no partition is left).
#
# A pause longer than net_ticktime is a partition the paused node cannot see coming: on
# SIGCONT it finds the others "down" and at once back, so pause_minority does not pause it,
# and Mnesia records a partition that nothing heals (the node then runs alone while the
# other two run without it). `rejoin NODE` waits for the three nodes to see each other and,
# while a partition is reported, restarts NODE's app (stop_app, start_app): RabbitMQ's
# documented recovery from a split brain (restart the nodes outside the trusted side).
#
# Usage: deploy/cluster/rabbitmq-cluster.sh --help
set -euo pipefail

NODES=(a b c)
declare -A PORT=(
  [a]="${BILLFLOW_CLUSTER_PORT_A:-5681}"
  [b]="${BILLFLOW_CLUSTER_PORT_B:-5682}"
  [c]="${BILLFLOW_CLUSTER_PORT_C:-5683}"
)
declare -A OCTET=([a]=11 [b]=12 [c]=13)
declare -A RULE_PREF=([a]=11 [b]=12 [c]=13)
LOCAL_PREF_MOVED=100
WAIT_SECONDS="${BILLFLOW_CLUSTER_WAIT_SECONDS:-180}"

usage() {
  cat <<'USAGE'
rabbitmq-cluster.sh VERB ...

  start DIR            start billflow-a/-b/-c@localhost with their files under DIR, cluster
                       b and c with a, print the three AMQP URLs (reports a running cluster)
  stop DIR             stop the three nodes (rabbitmqctl stop, then SIGKILL what remains),
                       heal any partition, remove their files under DIR (nothing running: ok)
  status DIR           each node's pid and whether it answers; the cluster status
  urls DIR             the three AMQP URLs, one per line
  kill NODE DIR        SIGKILL the node's beam process (NODE: a, b, c or billflow-a@localhost)
  restart NODE DIR     start a node again after kill/stop and wait for it
  pause NODE DIR       SIGSTOP the node's beam process
  resume NODE DIR      SIGCONT it
  partition NODE DIR   cut the node's inter-node traffic (ip rule prohibit; see the header)
  heal NODE DIR        undo partition
  rejoin NODE DIR      wait until the three nodes run together with no partition; while one
                       is reported, restart NODE's app (after resume or heal; see the header)

Environment: BILLFLOW_CLUSTER_PORT_A/_B/_C (AMQP ports, default 5681/5682/5683; the
distribution port is AMQP port + 20000), BILLFLOW_CLUSTER_WAIT_SECONDS (default 180).
USAGE
}

die() {
  echo "rabbitmq-cluster: $*" >&2
  exit 1
}

node_name() { echo "billflow-$1@localhost"; }
dist_port() { echo $((${PORT[$1]} + 20000)); }
url() { echo "amqp://guest:guest@127.0.0.1:${PORT[$1]}/%2f"; }

# a, b, c or the full node name -> a, b, c
letter() {
  local n="${1#billflow-}"
  n="${n%@localhost}"
  [[ -n "${PORT[$n]:-}" ]] || die "unknown node '$1' (a, b, c or billflow-X@localhost)"
  echo "$n"
}

abs_dir() {
  [[ -n "${1:-}" ]] || die "DIR is required (see --help)"
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# DIR as given, without creating it: stop and status on nothing are fine.
given_dir() {
  [[ -n "${1:-}" ]] || die "DIR is required (see --help)"
  if [[ -d "$1" ]]; then (cd "$1" && pwd); else echo "$1"; fi
}

node_env() {
  local dir="$1" n="$2"
  echo RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_PORT="${PORT[$n]}" \
    RABBITMQ_DIST_PORT="$(dist_port "$n")" \
    RABBITMQ_CONF_ENV_FILE="$dir/$n/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$dir/$n/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/$n/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/$n/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/$n/data" \
    RABBITMQ_LOG_BASE="$dir/$n/log" \
    RABBITMQ_PID_FILE="$dir/$n/run/pid"
}

ctl() {
  local n="$1"
  shift
  rabbitmqctl -q -n "$(node_name "$n")" "$@"
}

answers() {
  timeout 20 rabbitmqctl -q -n "$(node_name "$1")" eval 'ok.' >/dev/null 2>&1
}

write_files() {
  local dir="$1" n="$2"
  mkdir -p "$dir/$n/data" "$dir/$n/log" "$dir/$n/run"
  # Our own env file: the system's names the default node and would override ours.
  cat >"$dir/$n/rabbitmq-env.conf" <<ENV
ERL_EPMD_ADDRESS=127.0.0.1
ENV
  # Our own config: the system's pins the listener to 5672.
  cat >"$dir/$n/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:${PORT[$n]}
loopback_users.guest = true
cluster_partition_handling = pause_minority
log.file.level = info
CONF
  cat >"$dir/$n/advanced.config" <<ADV
[
 {kernel, [
   {inet_dist_use_interface, {127,0,0,1}},
   {inet_dist_connect_options, [{ip, {127,0,0,${OCTET[$n]}}}]},
   {net_ticktime, 10}
 ]},
 {rabbit, [{quorum_cluster_size, 3}]}
].
ADV
  echo '[].' >"$dir/$n/enabled_plugins"
  if [[ "$(id -u)" -eq 0 ]]; then
    chown -R rabbitmq:rabbitmq "$dir/$n"
  fi
}

node_pid() {
  local dir="$1" n="$2" pid=""
  if [[ -r "$dir/$n/run/pid" ]]; then
    pid="$(tr -dc '0-9' <"$dir/$n/run/pid")"
  fi
  # The pid file survives a SIGKILL: only trust a live beam started for this node.
  if [[ -n "$pid" && -r "/proc/$pid/environ" ]] &&
    tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "RABBITMQ_NODENAME=$(node_name "$n")"; then
    echo "$pid"
    return 0
  fi
  pid="$(timeout 20 rabbitmqctl -q -n "$(node_name "$n")" eval 'os:getpid().' 2>/dev/null | tr -dc '0-9')" || true
  [[ -n "$pid" ]] && echo "$pid"
}

start_node() {
  local dir="$1" n="$2"
  if answers "$n"; then
    echo "$(node_name "$n") already running"
    return 0
  fi
  write_files "$dir" "$n"
  # shellcheck disable=SC2046
  env $(node_env "$dir" "$n") rabbitmq-server -detached
}

await_node() {
  local n="$1" waited=0
  # await_startup fails at once while the detached node has not registered with epmd yet.
  until answers "$n"; do
    waited=$((waited + 1))
    [[ $waited -lt $WAIT_SECONDS ]] || die "$(node_name "$n") did not come up within ${WAIT_SECONDS}s; see its log dir"
    sleep 1
  done
  timeout "$((WAIT_SECONDS + 10))" rabbitmqctl -q -n "$(node_name "$n")" await_startup \
    --timeout "$WAIT_SECONDS" || die "$(node_name "$n") did not start within ${WAIT_SECONDS}s; see its log dir"
}

# As the first node that answers sees them (a may be the one killed or cut off).
running_nodes() {
  local json
  for n in "${NODES[@]}"; do
    if json="$(timeout 20 rabbitmqctl -q -n "$(node_name "$n")" cluster_status --formatter json 2>/dev/null)"; then
      jq -r '.running_nodes[]' <<<"$json" | sort
      return 0
    fi
  done
}

cluster_complete() {
  [[ "$(running_nodes | grep -c '^billflow-[abc]@localhost$')" -eq 3 ]]
}

# Every node answers, lists the three as running and reports no partition.
cluster_whole() {
  local n json
  for n in "${NODES[@]}"; do
    json="$(timeout 20 rabbitmqctl -q -n "$(node_name "$n")" cluster_status --formatter json 2>/dev/null)" || return 1
    jq -e '(.running_nodes | length) == 3 and (.partitions | length) == 0' <<<"$json" >/dev/null || return 1
  done
}

# Some answering node reports a partition.
partition_reported() {
  local n json
  for n in "${NODES[@]}"; do
    json="$(timeout 20 rabbitmqctl -q -n "$(node_name "$n")" cluster_status --formatter json 2>/dev/null)" || continue
    jq -e '(.partitions | length) > 0' <<<"$json" >/dev/null && return 0
  done
  return 1
}

cmd_start() {
  local dir
  dir="$(abs_dir "${1:-}")"
  if cluster_complete; then
    echo "cluster already running under $dir:"
    cmd_urls "$dir"
    return 0
  fi
  # rabbitmq-server runs as the rabbitmq user: it must reach DIR.
  chmod 0755 "$dir"
  for n in "${NODES[@]}"; do
    start_node "$dir" "$n"
  done
  for n in "${NODES[@]}"; do
    await_node "$n"
  done
  for n in b c; do
    if ! running_nodes | grep -qx "$(node_name "$n")"; then
      ctl "$n" stop_app
      ctl "$n" join_cluster "$(node_name a)"
      ctl "$n" start_app
      await_node "$n"
    fi
  done
  cluster_complete || die "cluster_status does not list three running nodes: $(running_nodes | tr '\n' ' ')"
  echo "cluster of three running nodes under $dir:"
  cmd_urls "$dir"
}

cmd_urls() {
  for n in "${NODES[@]}"; do
    url "$n"
  done
}

cmd_stop() {
  local dir
  dir="$(given_dir "${1:-}")"
  for n in "${NODES[@]}"; do
    heal_rules "$n"
  done
  for n in "${NODES[@]}"; do
    local pid
    pid="$(node_pid "$dir" "$n" || true)"
    if [[ -n "$pid" ]]; then
      kill -CONT "$pid" 2>/dev/null || true
      timeout 60 rabbitmqctl -q -n "$(node_name "$n")" stop >/dev/null 2>&1 || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "$(node_name "$n") stopped"
    fi
    rm -rf "${dir:?}/$n"
  done
}

cmd_status() {
  local dir
  dir="$(given_dir "${1:-}")"
  for n in "${NODES[@]}"; do
    local pid state
    pid="$(node_pid "$dir" "$n" || true)"
    if [[ -z "$pid" ]]; then
      state="down"
    elif grep -q '^State:.*T' "/proc/$pid/status" 2>/dev/null; then
      state="paused (SIGSTOP)"
    elif answers "$n"; then
      state="running"
    else
      state="not answering"
    fi
    echo "$(node_name "$n") port ${PORT[$n]} pid ${pid:--}: $state$(rule_on "$n" && echo ', partitioned' || true)"
  done
  echo "running cluster members (as the first node that answers sees them): $(running_nodes | tr '\n' ' ')"
}

require_pid() {
  local pid
  pid="$(node_pid "$1" "$2" || true)"
  [[ -n "$pid" ]] || die "$(node_name "$2") is not running"
  echo "$pid"
}

cmd_signal() {
  local signal="$1" n dir pid
  n="$(letter "${2:-}")"
  dir="$(abs_dir "${3:-}")"
  pid="$(require_pid "$dir" "$n")"
  kill "-$signal" "$pid"
  echo "$(node_name "$n") (pid $pid): SIG$signal"
}

cmd_restart() {
  local n dir
  n="$(letter "${1:-}")"
  dir="$(abs_dir "${2:-}")"
  start_node "$dir" "$n"
  await_node "$n"
  echo "$(node_name "$n") running"
}

# Rules of one node, by their priority: only this script uses these priorities.
rule_on() {
  ip rule show pref "${RULE_PREF[$1]}" 2>/dev/null | grep -q .
}

heal_rules() {
  local n="$1"
  while ip rule del pref "${RULE_PREF[$n]}" 2>/dev/null; do :; done
  local any=0
  for m in "${NODES[@]}"; do
    if rule_on "$m"; then any=1; fi
  done
  if [[ $any -eq 0 ]] && ip rule show pref "$LOCAL_PREF_MOVED" | grep -q 'lookup local'; then
    ip rule show pref 0 | grep -q 'lookup local' || ip rule add pref 0 lookup local
    ip rule del pref "$LOCAL_PREF_MOVED" lookup local
  fi
}

cmd_partition() {
  local n dir pref port ip
  n="$(letter "${1:-}")"
  dir="$(abs_dir "${2:-}")"
  [[ "$(id -u)" -eq 0 ]] || die "partition needs root (ip rule)"
  pref="${RULE_PREF[$n]}"
  port="$(dist_port "$n")"
  ip="127.0.0.${OCTET[$n]}"
  rule_on "$n" && { echo "$(node_name "$n") already partitioned"; return 0; }
  # The local table answers every 127/8 lookup at priority 0: move it behind our rules.
  if ! ip rule show pref "$LOCAL_PREF_MOVED" | grep -q 'lookup local'; then
    ip rule add pref "$LOCAL_PREF_MOVED" lookup local
  fi
  ip rule show pref 0 | grep -q 'lookup local' && ip rule del pref 0 lookup local
  ip rule add pref "$pref" ipproto tcp dport "$port" prohibit
  ip rule add pref "$pref" ipproto tcp sport "$port" prohibit
  ip rule add pref "$pref" from "$ip" prohibit
  ip rule add pref "$pref" to "$ip" prohibit
  echo "$(node_name "$n") partitioned: distribution port $port and $ip cut off"
}

cmd_heal() {
  local n
  n="$(letter "${1:-}")"
  abs_dir "${2:-}" >/dev/null
  heal_rules "$n"
  echo "$(node_name "$n") healed"
}

# Two checks in a row (each asks all three nodes: a few seconds), so a node about to notice
# that the others went away (just resumed) is not taken for whole; an app restart at most
# every 30 s.
cmd_rejoin() {
  local n dir steady=0 start=$SECONDS last_restart=-30
  n="$(letter "${1:-}")"
  dir="$(abs_dir "${2:-}")"
  while [[ $steady -lt 2 ]]; do
    if cluster_whole; then
      steady=$((steady + 1))
      continue
    fi
    steady=0
    if [[ $((SECONDS - last_restart)) -ge 30 ]] && partition_reported; then
      echo "$(node_name "$n"): a partition is reported; restarting its app"
      ctl "$n" stop_app
      ctl "$n" start_app
      await_node "$n"
      last_restart=$SECONDS
    fi
    [[ $((SECONDS - start)) -lt $WAIT_SECONDS ]] || die "the three nodes did not run together within ${WAIT_SECONDS}s: $(running_nodes | tr '\n' ' ')"
    sleep 1
  done
  echo "$(node_name "$n") in a cluster of three, no partition ($((SECONDS - start)) s)"
}

verb="${1:-}"
shift || true
case "$verb" in
  -h | --help | help) usage ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  urls) cmd_urls "$@" ;;
  kill) cmd_signal KILL "$@" ;;
  pause) cmd_signal STOP "$@" ;;
  resume) cmd_signal CONT "$@" ;;
  restart) cmd_restart "$@" ;;
  partition) cmd_partition "$@" ;;
  heal) cmd_heal "$@" ;;
  rejoin) cmd_rejoin "$@" ;;
  *)
    usage >&2
    exit 2
    ;;
esac
