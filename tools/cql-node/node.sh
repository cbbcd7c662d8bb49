#!/usr/bin/env bash
# A local single-node CQL server for tests and development: Apache Cassandra 5.0 run straight from its
# Maven Central jars on JDK 17 (no Docker, no ScyllaDB package needed). See README.md beside this file.
#
#   node.sh fetch    copy the jars into the cache (once; skipped when complete)
#   node.sh start    fetch if needed, render the config, start the node, wait until it answers CQL
#   node.sh stop     stop exactly the recorded pid (TERM, then KILL after a timeout)
#   node.sh kill     KILL exactly the recorded pid at once (a crash: no drain, no flush)
#   node.sh status   print running/stopped; exit 0 when running, 3 when stopped
#   node.sh wipe     stop, then delete the run dir (data, commitlog, logs)
#
# Environment (all optional):
#   SIETCH_CQL_PORT           native (CQL) port, default 9042
#   SIETCH_CQL_STORAGE_PORT   inter-node port, default 7000
#   SIETCH_CQL_ADDRESS        listen and rpc address, default 127.0.0.1 (any of 127/8 works on Linux)
#   SIETCH_CQL_SEEDS          seed list, default <SIETCH_CQL_ADDRESS>:<SIETCH_CQL_STORAGE_PORT> (a cluster of one)
#   SIETCH_CQL_CLUSTER_NAME   cluster_name, default sietch-local
#   SIETCH_CQL_RING_DELAY_MS  default 100 (a lone node waits for nobody); a node joining others needs
#                             a few seconds, its first gossip exchange must come back within this time
#   SIETCH_CQL_UNSAFE_SYSTEM  true (default): schema changes are not flushed to disk at once (faster DDL;
#                             a node that is killed forgets them); false for a node that may be killed
#   SIETCH_CQL_DIR            run dir, default <repo>/.run/cql-node
#   SIETCH_CQL_CACHE          jar cache root, default ${XDG_CACHE_HOME:-$HOME/.cache}/sietch/cql-node
#   SIETCH_CQL_JAVA_HOME      JDK 17 home, default /usr/lib/jvm/java-17-openjdk-amd64
#   SIETCH_CQL_HEAP           heap size for -Xms/-Xmx, default 1G
#   SIETCH_CQL_JVM_OPTS       extra JVM flags, appended last (word-split)
#   SIETCH_CQL_JMX_PORT       if set, local-only JMX on that port (for nodetool); default off
#   SIETCH_CQL_START_TIMEOUT  seconds to wait for CQL readiness, default 180
#   SIETCH_CQL_STOP_TIMEOUT   seconds between TERM and KILL, default 30
#   PYTHON                    an interpreter with scylla-driver: if set, readiness also needs a driver query
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

VERSION=$(sed -n 's:.*<cassandra\.version>\([^<]*\)</cassandra\.version>.*:\1:p' "$HERE/pom.xml" | head -n1)
[[ -n $VERSION ]] || { echo "cql-node: cannot read cassandra.version from $HERE/pom.xml" >&2; exit 2; }

CACHE_ROOT=${SIETCH_CQL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sietch/cql-node}
VERSION_DIR=$CACHE_ROOT/$VERSION
LIB=$VERSION_DIR/lib
MARKER=$VERSION_DIR/.complete

RUN_DIR=${SIETCH_CQL_DIR:-$REPO/.run/cql-node}
PORT=${SIETCH_CQL_PORT:-9042}
STORAGE_PORT=${SIETCH_CQL_STORAGE_PORT:-7000}
ADDRESS=${SIETCH_CQL_ADDRESS:-127.0.0.1}
SEEDS=${SIETCH_CQL_SEEDS:-$ADDRESS:$STORAGE_PORT}
CLUSTER_NAME=${SIETCH_CQL_CLUSTER_NAME:-sietch-local}
UNSAFE_SYSTEM=${SIETCH_CQL_UNSAFE_SYSTEM:-true}
RING_DELAY_MS=${SIETCH_CQL_RING_DELAY_MS:-100}
JAVA_HOME_17=${SIETCH_CQL_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
JAVA=$JAVA_HOME_17/bin/java
HEAP=${SIETCH_CQL_HEAP:-1G}
START_TIMEOUT=${SIETCH_CQL_START_TIMEOUT:-180}
STOP_TIMEOUT=${SIETCH_CQL_STOP_TIMEOUT:-30}

PID_FILE=$RUN_DIR/cassandra.pid
CONF_DIR=$RUN_DIR/conf
DATA_DIR=$RUN_DIR/data
LOG_DIR=$RUN_DIR/logs
YAML=$CONF_DIR/cassandra.yaml

# Serialise start/stop on one run dir (e.g. several test workers calling `start` at once).
lock_run_dir() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 30)) 9 || die "could not lock $RUN_DIR/.lock"
}

log() { printf 'cql-node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------------------- fetch

pom_hash() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

fetch_complete() { [[ -f $MARKER && -d $LIB ]] && [[ $(cat "$MARKER") == "$(pom_hash)" ]]; }

cmd_fetch() {
    if fetch_complete; then
        log "jars for Cassandra $VERSION already in $LIB"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
    mkdir -p "$VERSION_DIR"
    # Copy into a scratch dir and move it into place only on success, so an interrupted or failed
    # download never looks complete; the marker (the pom's hash) is written last.
    local tmp=$VERSION_DIR/lib.partial
    rm -rf "$tmp" "$MARKER"
    log "copying Cassandra $VERSION jars from Maven Central into $LIB ..."
    local t0=$SECONDS
    # JDK 17 for Maven too (the newer Temurin JDK on these machines is not needed for anything here).
    # -f points at the pom; with packaging "pom" and an explicit outputDirectory nothing is written
    # into the source tree.
    # Maven's output goes to a log, shown only on failure (Maven 3.8 prints stray colour codes even
    # with -B -q).
    local mvn_log=$VERSION_DIR/fetch.log
    if ! JAVA_HOME=$JAVA_HOME_17 mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime \
        >"$mvn_log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | tail -n 40 >&2
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed (full output: $mvn_log)"
    fi
    ls "$tmp"/cassandra-all-"$VERSION".jar >/dev/null 2>&1 \
        || { rm -rf "$tmp"; die "cassandra-all-$VERSION.jar missing after the copy"; }
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    pom_hash >"$MARKER"
    log "fetched $(find "$LIB" -name '*.jar' | wc -l) jars ($(du -sh "$LIB" | cut -f1)) in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------- process state

# The recorded pid, if that process is alive and is a Cassandra daemon using this run dir's config
# (guards against a stale pid file whose number was reused by an unrelated process).
live_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid=$(tr -dc '0-9' <"$PID_FILE")
    [[ -n $pid ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *org.apache.cassandra.service.CassandraDaemon* && $cmd == *"file://$YAML"* ]] || return 1
    echo "$pid"
}

# The CQL port of the node in this run dir: the rendered yaml's value (so status/stop/start talk to
# the port the node was started with, whatever SIETCH_CQL_PORT says now), else SIETCH_CQL_PORT.
node_port() {
    local p=''
    [[ -f $YAML ]] && p=$(sed -n 's/^native_transport_port: *\([0-9][0-9]*\).*/\1/p' "$YAML")
    echo "${p:-$PORT}"
}

# Likewise the address the node in this run dir listens on.
node_address() {
    local a=''
    [[ -f $YAML ]] && a=$(sed -n 's/^rpc_address: *\([0-9.][0-9.]*\).*/\1/p' "$YAML")
    echo "${a:-$ADDRESS}"
}

port_open() { (exec 3<>"/dev/tcp/$ADDRESS/$1") 2>/dev/null; }

# A real CQL exchange in pure bash (no driver needed): protocol v4 STARTUP must get READY, then
# QUERY "SELECT release_version FROM system.local" must get a RESULT; prints the release version.
_cql_probe() {
    local address=$1 port=$2 hex
    exec 3<>"/dev/tcp/$address/$port" || return 1
    # header: version 0x04, flags 0, stream 1, opcode STARTUP (0x01), body length 22
    # body: string map {"CQL_VERSION": "3.0.0"}
    printf '\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0' >&3
    hex=$(head -c 9 <&3 | od -An -v -tx1 | tr -d ' \n')
    [[ ${hex:0:2} == 84 && ${hex:8:2} == 02 ]] || return 1            # response v4, opcode READY
    # stream 2, opcode QUERY (0x07), body: [long string] query, [short] consistency ONE, [byte] flags 0
    local q='SELECT release_version FROM system.local'
    printf '\x04\x00\x00\x02\x07\x00\x00\x00\x2f\x00\x00\x00\x28%s\x00\x01\x00' "$q" >&3
    hex=$(head -c 9 <&3 | od -An -v -tx1 | tr -d ' \n')
    [[ ${hex:0:2} == 84 && ${hex:8:2} == 08 ]] || return 1            # opcode RESULT
    local len=$((16#${hex:10:8}))
    hex=$(head -c "$len" <&3 | od -An -v -tx1 | tr -d ' \n')
    [[ ${hex:0:8} == 00000002 ]] || return 1                          # result kind Rows
    # ... "release_version" <type varchar 000d> <row count 00000001> <cell length> <cell bytes>
    local name_hex=72656c656173655f76657273696f6e                      # "release_version"
    local rest=${hex##*"$name_hex"}
    [[ $rest != "$hex" && ${rest:0:4} == 000d && ${rest:4:8} == 00000001 ]] || return 1
    local vlen=$((16#${rest:12:8})) vhex=${rest:20} out='' i
    # shellcheck disable=SC2059  # the format is a \xHH escape built on purpose
    for ((i = 0; i < vlen * 2; i += 2)); do out+=$(printf "\\x${vhex:i:2}"); done
    exec 3<&-
    printf '%s\n' "$out"
}

cql_probe() {
    timeout 5 bash -c "$(declare -f _cql_probe); _cql_probe $ADDRESS $1" 2>/dev/null
}

# Optional, when $PYTHON has scylla-driver: the same check through the driver the tests use.
driver_probe() {
    timeout 30 "$PYTHON" - "$ADDRESS" "$PORT" <<'PY' >/dev/null 2>&1
import sys
from cassandra.cluster import Cluster
from cassandra.policies import WhiteListRoundRobinPolicy
# Only this node, also when it is one of several (the driver would otherwise use its peers too).
cluster = Cluster(
    [sys.argv[1]],
    port=int(sys.argv[2]),
    protocol_version=4,
    connect_timeout=5,
    load_balancing_policy=WhiteListRoundRobinPolicy([sys.argv[1]]),
)
try:
    session = cluster.connect()
    session.execute("SELECT release_version FROM system.local", timeout=5).one()
finally:
    cluster.shutdown()
PY
}

python_has_driver() {
    [[ -n ${PYTHON:-} ]] && "$PYTHON" -c 'import cassandra.cluster' >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------- start

check_java() {
    [[ -x $JAVA ]] || die "no JDK 17 at $JAVA_HOME_17 (set SIETCH_CQL_JAVA_HOME; apt-get install openjdk-17-jdk-headless)"
    local v
    v=$("$JAVA" -version 2>&1 | head -n1)
    [[ $v == *'"17.'* ]] || die "Cassandra 5.0 needs Java 17, $JAVA says: $v"
}

render_config() {
    mkdir -p "$CONF_DIR/triggers" "$LOG_DIR" "$RUN_DIR/tmp" \
        "$DATA_DIR"/{data,commitlog,saved_caches,hints,cdc_raw}
    local esc_dir=${DATA_DIR//&/\\&}
    sed -e "s|@DATA_DIR@|$esc_dir|g" \
        -e "s|@NATIVE_PORT@|$PORT|g" \
        -e "s|@STORAGE_PORT@|$STORAGE_PORT|g" \
        -e "s|@ADDRESS@|$ADDRESS|g" \
        -e "s|@SEEDS@|$SEEDS|g" \
        -e "s|@CLUSTER_NAME@|$CLUSTER_NAME|g" \
        "$HERE/cassandra.yaml.in" >"$YAML.tmp"
    mv "$YAML.tmp" "$YAML"
    cp "$HERE/logback.xml" "$CONF_DIR/logback.xml"
}

jvm_flags() {
    # From Cassandra 5.0's conf/jvm-server.options (general section) and conf/jvm17-server.options
    # (G1 + JPMS + Netty; the JPMS list also has the two exports later 5.0 copies add). Left out:
    # -XX:+AlwaysPreTouch (touches the whole heap at start), -XX:+UseNUMA, -XX:-UseBiasedLocking
    # (deprecated in 17), -XX:+HeapDumpOnOutOfMemoryError (a 1 GiB file; we exit on OOM instead),
    # G1HeapRegionSize/IHOP tuning meant for big heaps. No jamm -javaagent: 5.0 runs fine without it.
    FLAGS=(
        -Xms"$HEAP" -Xmx"$HEAP" -Xss256k
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:MaxGCPauseMillis=300
        -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem -XX:+UseThreadPriorities
        -ea -da:net.openhft...
        -Djava.net.preferIPv4Stack=true
        -Djdk.attach.allowAttachSelf=true
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true
        -Dio.netty.allocator.maxOrder=11
        # Cassandra system properties.
        -Dcassandra.config="file://$YAML"
        -Dcassandra.storagedir="$DATA_DIR"
        -Dcassandra.logdir="$LOG_DIR"
        -Dlogback.configurationFile="$CONF_DIR/logback.xml"
        -Dcassandra-foreground=yes
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms="$RING_DELAY_MS"
        -Dcassandra.superuser_setup_delay_ms=0
        -Dcassandra.unsafesystem="$UNSAFE_SYSTEM"
        -Dcassandra.shutdown_announce_in_ms=0
        -Dcassandra.triggers_dir="$CONF_DIR/triggers"
        -Djava.io.tmpdir="$RUN_DIR/tmp"
        -XX:+ExitOnOutOfMemoryError
    )
    if [[ -n ${SIETCH_CQL_JMX_PORT:-} ]]; then
        FLAGS+=(-Dcassandra.jmx.local.port="$SIETCH_CQL_JMX_PORT")
    fi
    if [[ -n ${SIETCH_CQL_JVM_OPTS:-} ]]; then
        # shellcheck disable=SC2206  # word-splitting is the point
        FLAGS+=($SIETCH_CQL_JVM_OPTS)
    fi
}

show_log_tail() {
    local f
    for f in "$LOG_DIR/system.log" "$LOG_DIR/stdout.log"; do
        [[ -s $f ]] || continue
        echo "---- last lines of $f ----" >&2
        tail -n 40 "$f" >&2
    done
}

wait_ready() {
    local pid=$1 deadline=$((SECONDS + START_TIMEOUT)) version='' use_driver=0
    python_has_driver && use_driver=1
    printf 'cql-node: waiting for CQL on %s:%s ' "$ADDRESS" "$PORT" >&2
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo >&2
            rm -f "$PID_FILE"
            show_log_tail
            die "the node (pid $pid) exited during start-up"
        fi
        # Cheap checks first (the JVM needs both cores while starting): TCP, then the CQL exchange.
        if port_open "$PORT" && version=$(cql_probe "$PORT") && [[ -n $version ]]; then
            if ((use_driver == 0)) || driver_probe; then
                echo >&2
                log "Cassandra $version ready on $ADDRESS:$PORT (pid $pid, run dir $RUN_DIR)"
                return 0
            fi
        fi
        printf '.' >&2
        sleep 1
    done
    echo >&2
    show_log_tail
    log "no CQL answer on $ADDRESS:$PORT after ${START_TIMEOUT}s; stopping pid $pid"
    cmd_stop
    exit 1
}

cmd_start() {
    local pid version
    lock_run_dir
    if pid=$(live_pid); then
        local running_port
        ADDRESS=$(node_address)
        running_port=$(node_port)
        if [[ $running_port != "$PORT" ]]; then
            log "warning: the node in $RUN_DIR runs on port $running_port, not SIETCH_CQL_PORT=$PORT"
            PORT=$running_port
        fi
        if version=$(cql_probe "$PORT") && [[ -n $version ]]; then
            log "already running: Cassandra $version on $ADDRESS:$PORT (pid $pid)"
            return 0
        fi
        log "pid $pid is up but not answering yet; waiting"
        wait_ready "$pid"
        return 0
    fi
    rm -f "$PID_FILE"
    check_java
    fetch_complete || cmd_fetch
    if port_open "$PORT"; then
        die "port $PORT already accepts connections but not from this run dir's node (set SIETCH_CQL_PORT)"
    fi
    if port_open "$STORAGE_PORT"; then
        die "storage port $STORAGE_PORT is taken (set SIETCH_CQL_STORAGE_PORT)"
    fi
    render_config
    jvm_flags
    # setsid + nohup: own session, survives the calling shell; no stdin. In a non-interactive script
    # the background child is not a process-group leader, so setsid execs java without forking and
    # $! is the JVM's own pid.
    (
        cd "$RUN_DIR"
        exec 9>&-   # the JVM must not inherit (and so hold) the run-dir lock
        exec setsid nohup "$JAVA" "${FLAGS[@]}" -cp "$LIB/*" \
            org.apache.cassandra.service.CassandraDaemon \
            >>"$LOG_DIR/stdout.log" 2>&1 </dev/null
    ) &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$PID_FILE"
    log "started pid $pid (Cassandra $VERSION, JDK $("$JAVA" -version 2>&1 | head -n1 | cut -d'"' -f2)), log $LOG_DIR/system.log"
    wait_ready "$pid"
}

# ----------------------------------------------------------------------------------- stop/status/wipe

cmd_stop() {
    local pid
    [[ -d $RUN_DIR ]] && lock_run_dir
    if ! pid=$(live_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${STOP_TIMEOUT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

# A crash, for tests of a cluster losing a node: no drain, no flush. What the commit log had not synced
# is still in the page cache and is replayed at the next start (only a machine crash would lose it).
cmd_kill() {
    local pid
    [[ -d $RUN_DIR ]] && lock_run_dir
    if ! pid=$(live_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$PID_FILE"
    log "killed pid $pid"
}

cmd_status() {
    local pid version
    if pid=$(live_pid); then
        PORT=$(node_port)
        ADDRESS=$(node_address)
        if version=$(cql_probe "$PORT") && [[ -n $version ]]; then
            echo "running (pid $pid, Cassandra $version on $ADDRESS:$PORT, run dir $RUN_DIR)"
        else
            echo "running (pid $pid, not answering CQL on $ADDRESS:$PORT yet, run dir $RUN_DIR)"
        fi
        return 0
    fi
    echo "stopped (run dir $RUN_DIR)"
    return 3
}

cmd_wipe() {
    cmd_stop
    case $RUN_DIR in
        '' | / | "$HOME" | "$REPO") die "refusing to delete '$RUN_DIR'" ;;
    esac
    rm -rf "$RUN_DIR"
    log "deleted $RUN_DIR"
}

case ${1:-} in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    status) cmd_status ;;
    wipe) cmd_wipe ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
