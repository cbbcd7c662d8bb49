#!/usr/bin/env bash
# A local two-node CQL cluster for tests: two node.sh nodes on the loopback addresses 127.0.0.2 and
# 127.0.0.3 (each with its own run dir, CQL on port 9042 and gossip on 7000 of its own address), one
# cluster name, 127.0.0.2 the seed. See README.md beside this file.
#
#   cluster.sh start        start the nodes one after the other (the seed first), then wait until each
#                           node sees the other up; nodes already running are left as they are
#   cluster.sh stop         stop both nodes (TERM, then KILL after a timeout)
#   cluster.sh status       each node's state; exit 0 when both run, 3 otherwise
#   cluster.sh wipe         stop, then delete the cluster's run dirs
#   cluster.sh kill N       KILL node N (2 or 3: the last byte of its address) at once, as a crash would
#   cluster.sh stop N       stop node N cleanly
#   cluster.sh start N      start node N again (same data dir), then wait until both nodes see each other up
#   cluster.sh wait         wait until both nodes run and each sees the other up
#
# Environment (all optional):
#   SIETCH_CLUSTER_DIR      where the nodes' run dirs go (node2/, node3/), default <repo>/.run/cql-cluster
#   SIETCH_CLUSTER_HEAP     each node's heap (-Xms/-Xmx), default 768M
#   SIETCH_CLUSTER_TIMEOUT  seconds to wait for the nodes to see each other, default 120
#   PYTHON                  an interpreter with scylla-driver; needed for `wait` (and so for start)
#   SIETCH_CQL_CACHE, SIETCH_CQL_JAVA_HOME, SIETCH_CQL_START_TIMEOUT, SIETCH_CQL_STOP_TIMEOUT as for node.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

CLUSTER_DIR=${SIETCH_CLUSTER_DIR:-$REPO/.run/cql-cluster}
HEAP=${SIETCH_CLUSTER_HEAP:-768M}
TIMEOUT=${SIETCH_CLUSTER_TIMEOUT:-120}
NODES=(2 3)
SEED=127.0.0.2
CLUSTER_NAME=sietch-cluster
PORT=9042
STORAGE_PORT=7000

log() { printf 'cql-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# node.sh for node N, with that node's address, run dir and the cluster's seed and name. Two settings
# differ from a lone node's: schema changes are flushed at once (a killed node otherwise forgets the
# tables created since its last flush, and skips their writes when it replays its commit log), and the
# ring delay is 5 s (with 100 ms a joining node gives up on its first gossip exchange on a busy machine:
# "Unable to gossip with any peers").
node() {
    local n=$1
    shift
    SIETCH_CQL_DIR=$CLUSTER_DIR/node$n \
        SIETCH_CQL_ADDRESS=127.0.0.$n \
        SIETCH_CQL_PORT=$PORT \
        SIETCH_CQL_STORAGE_PORT=$STORAGE_PORT \
        SIETCH_CQL_SEEDS=$SEED:$STORAGE_PORT \
        SIETCH_CQL_CLUSTER_NAME=$CLUSTER_NAME \
        SIETCH_CQL_HEAP=$HEAP \
        SIETCH_CQL_UNSAFE_SYSTEM=false \
        SIETCH_CQL_RING_DELAY_MS=5000 \
        SIETCH_CQL_JMX_PORT='' \
        bash "$HERE/node.sh" "$@"
}

check_node() {
    local n=$1
    [[ " ${NODES[*]} " == *" $n "* ]] || die "no node $n (the nodes are ${NODES[*]})"
}

# Each node must see the other NORMAL, ready for clients and alive: what `nodetool status` shows as UN
# (there is no JMX here, so no nodetool). Alive = the other's gossip heartbeat advances in this node's
# view between two looks (a dead node's heartbeat stands still).
cmd_wait() {
    [[ -n ${PYTHON:-} ]] && "$PYTHON" -c 'import cassandra.cluster' >/dev/null 2>&1 \
        || die "set PYTHON to an interpreter with scylla-driver"
    "$PYTHON" - "$PORT" "$TIMEOUT" "${NODES[@]/#/127.0.0.}" <<'PY'
import sys
import time

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy

port, timeout, addresses = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
deadline = time.monotonic() + timeout


def view(address):
    """What one node believes of every node: {address: (status, rpc ready, generation, heartbeat)}."""
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([address]), request_timeout=5)
    cluster = Cluster(
        [address], port=port, protocol_version=4, connect_timeout=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        rows = cluster.connect().execute(
            "SELECT address, status_with_port, rpc_ready, generation, heartbeat FROM system_views.gossip_info"
        )
        return {r.address: ((r.status_with_port or "").split(",")[0], r.rpc_ready, r.generation, r.heartbeat) for r in rows}
    finally:
        cluster.shutdown()


before, last = {}, ""
while True:
    problems, now = [], {}
    for address in addresses:
        try:
            now[address] = view(address)
        except Exception as exc:  # not answering (yet)
            problems.append(f"{address} does not answer ({type(exc).__name__})")
            continue
        for other in addresses:
            if other == address:
                continue
            status, rpc_ready, generation, heartbeat = now[address].get(other, ("unknown", None, None, None))
            earlier = before.get(address, {}).get(other)
            if status != "NORMAL" or rpc_ready != "true":
                problems.append(f"{address} sees {other} as {status}{'' if rpc_ready == 'true' else ', not ready'}")
            elif earlier is None or earlier[2] != generation or earlier[3] >= heartbeat:
                problems.append(f"{address} has no fresh heartbeat from {other}")
    if not problems:
        print(f"cql-cluster: {' and '.join(addresses)} up, each sees the other alive and NORMAL", file=sys.stderr)
        break
    if "; ".join(problems) != last:
        last = "; ".join(problems)
        print(f"cql-cluster: waiting: {last}", file=sys.stderr)
    if time.monotonic() > deadline:
        sys.exit(f"cql-cluster: the nodes did not see each other up within {timeout:.0f}s: {last}")
    before = now
    time.sleep(1)
PY
}

cmd_start() {
    local n
    # One after the other: a node joining while another is still bootstrapping is refused.
    for n in "${NODES[@]}"; do
        node "$n" start
    done
    cmd_wait
}

cmd_stop() {
    local n
    for n in "${NODES[@]}"; do
        node "$n" stop
    done
}

cmd_status() {
    local n rc=0
    for n in "${NODES[@]}"; do
        printf 'node %s: ' "$n"
        node "$n" status || rc=3
    done
    return $rc
}

cmd_wipe() {
    local n
    for n in "${NODES[@]}"; do
        node "$n" wipe
    done
    case $CLUSTER_DIR in
        '' | / | "$HOME" | "$REPO") die "refusing to delete '$CLUSTER_DIR'" ;;
    esac
    rm -rf "$CLUSTER_DIR"
}

case ${1:-}:${2:-} in
    start:) cmd_start ;;
    stop:) cmd_stop ;;
    status:) cmd_status ;;
    wipe:) cmd_wipe ;;
    wait:) cmd_wait ;;
    start:?*) check_node "$2" && node "$2" start && cmd_wait ;;
    stop:?*) check_node "$2" && node "$2" stop ;;
    kill:?*) check_node "$2" && node "$2" kill ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
