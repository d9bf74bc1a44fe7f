#!/usr/bin/env bash
# A real Apache Kafka (KRaft, no ZooKeeper) on 127.0.0.1 for development and tests.
#
#   scripts/kafka.sh start [--nodes 1|3] [--port P] [--dir D] [--secure]
#                                                                start (or find running); prints the bootstrap address last
#   scripts/kafka.sh stop [--dir D]                              stop every node this directory started
#   scripts/kafka.sh status [--dir D]                            print the bootstrap address, exit 1 when not running
#   scripts/kafka.sh kill-node N [--dir D]                       SIGKILL node N (fault tests)
#   scripts/kafka.sh start-node N [--dir D]                      start node N again on its existing storage
#   scripts/kafka.sh classpath                                   fetch the jars if needed, print the Java classpath
#
# `start --secure` adds two authenticated listeners to every node: SASL_PLAINTEXT on P+200+N-1 (mechanisms
# SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN) and SASL_SSL on P+300+N-1 (the same, over TLS with a certificate for
# 127.0.0.1/localhost signed by a CA made for this cluster: <dir>/tls/ca.pem). The user is `hule`; its password is
# $HULE_KAFKA_SASL_PASSWORD or a random one. Ready-made librdkafka client files (mode 600, they hold the password):
# <dir>/client-sasl-ssl.properties and <dir>/client-sasl-plaintext.properties. Nothing secret is printed.
#
# The broker's jars come from Maven Central the first time (tools/kafka/pom.xml, `mvn dependency:copy-dependencies`)
# and are cached in $HULE_KAFKA_CACHE (default ~/.cache/hule-kafka). A cluster lives in its directory (default
# $HULE_KAFKA_CACHE/run): configuration, data, pids and logs (node-N/server.log, node-N/stdout.log). `start` on a
# stopped directory formats fresh storage: data does not survive stop/start.
#
# Ports: node N's broker listens on P+N-1 (default P=9092) and its controller on P+100+N-1, all on 127.0.0.1.
# With --nodes 3, topics default to replication factor 3 and min.insync.replicas=2. Every node runs in combined
# mode (broker and controller); heap 256–512 MiB each, which fits three nodes and the build on a 2-core machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${HULE_KAFKA_CACHE:-$HOME/.cache/hule-kafka}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/tools/kafka/pom.xml")"
lib="$cache/lib-$version"

cmd="${1:-}"
[ -n "$cmd" ] && shift
nodes=1 port=9092 dir="$cache/run" node="" secure=0
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --secure) secure=1; shift ;;
    [0-9]*) node="$1"; shift ;;
    *) echo "kafka.sh: unknown argument \`$1\`" >&2; exit 2 ;;
  esac
done

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch_jars() {
  [ -f "$lib/.complete" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka $version from Maven Central"
  command -v java >/dev/null || die "Java 17 or newer is needed to run Kafka"
  echo "kafka.sh: fetching Apache Kafka $version from Maven Central into $lib" >&2
  rm -rf "$lib.tmp"
  mvn -q -B -f "$root/tools/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$lib.tmp" -DincludeScope=runtime >&2 || die "mvn could not fetch Kafka $version"
  rm -rf "$lib" && mv "$lib.tmp" "$lib" && touch "$lib/.complete"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

bootstrap() {
  local n out=""
  for n in $(seq 1 "$(cat "$dir/nodes")"); do out="${out:+$out,}127.0.0.1:$(( $(cat "$dir/port") + n - 1 ))"; done
  echo "$out"
}

running() { # every node of the cluster in $dir has a live process
  [ -f "$dir/nodes" ] || return 1
  local n
  for n in $(seq 1 "$(cat "$dir/nodes")"); do alive "$dir/node-$n/pid" || return 1; done
}

write_config() { # node count, node id
  local count="$1" id="$2" n voters="" min_isr=1
  for n in $(seq 1 "$count"); do voters="${voters:+$voters,}$n@127.0.0.1:$((port + 100 + n - 1))"; done
  [ "$count" -ge 3 ] && min_isr=2
  mkdir -p "$dir/node-$id/data"
  local listeners="PLAINTEXT://127.0.0.1:$((port + id - 1)),CONTROLLER://127.0.0.1:$((port + 100 + id - 1))"
  local advertised="PLAINTEXT://127.0.0.1:$((port + id - 1))"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [ "$secure" = 1 ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$((port + 200 + id - 1)),SASL_SSL://127.0.0.1:$((port + 300 + id - 1))"
    advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$((port + 200 + id - 1)),SASL_SSL://127.0.0.1:$((port + 300 + id - 1))"
    protocols="$protocols,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
  fi
  cat >"$dir/node-$id/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/node-$id/data
num.partitions=3
default.replication.factor=$count
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$count
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$count
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$count
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
# A killed node is fenced after 6 s instead of 9 s (fault tests).
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
background.threads=4
log.flush.interval.messages=9223372036854775807
EOF
  if [ "$secure" = 1 ]; then
    chmod 600 "$dir/node-$id/server.properties"
    local l m module
    {
      echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
      for l in sasl_plaintext sasl_ssl; do
        for m in scram-sha-256 scram-sha-512; do
          echo "listener.name.$l.$m.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        done
        module="org.apache.kafka.common.security.plain.PlainLoginModule"
        echo "listener.name.$l.plain.sasl.jaas.config=$module required user_hule=\"$(cat "$dir/tls/password")\";"
      done
      echo "ssl.keystore.type=PEM"
      echo "ssl.keystore.location=$dir/tls/server.pem"
      echo "ssl.client.auth=none"
    } >>"$dir/node-$id/server.properties"
  fi
  cat >"$dir/node-$id/log4j2.yaml" <<EOF
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$dir/node-$id/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: file
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
EOF
}

make_tls() { # a CA and a server certificate for 127.0.0.1/localhost, the SASL password and client property files
  local t="$dir/tls" n addrs_ssl="" addrs_plain=""
  command -v openssl >/dev/null || die "openssl is needed for --secure"
  mkdir -p "$t" && chmod 700 "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/ca.key" -out "$t/ca.pem" -days 7 \
    -subj "/CN=hule-events test CA" >/dev/null 2>&1 || die "openssl could not make the CA"
  openssl req -newkey rsa:2048 -nodes -keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=localhost" \
    >/dev/null 2>&1 || die "openssl could not make the server key"
  echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$t/san.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -out "$t/server.crt" \
    -days 7 -extfile "$t/san.ext" >/dev/null 2>&1 || die "openssl could not sign the server certificate"
  cat "$t/server.key" "$t/server.crt" >"$t/server.pem"
  (umask 077; if [ -n "${HULE_KAFKA_SASL_PASSWORD:-}" ]; then printf '%s' "$HULE_KAFKA_SASL_PASSWORD"; else openssl rand -hex 16; fi >"$t/password")
  for n in $(seq 1 "$nodes"); do
    addrs_plain="${addrs_plain:+$addrs_plain,}127.0.0.1:$((port + 200 + n - 1))"
    addrs_ssl="${addrs_ssl:+$addrs_ssl,}127.0.0.1:$((port + 300 + n - 1))"
  done
  (umask 077
   printf '# SASL_SSL listener(s) of the cluster in %s (bootstrap %s)\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=hule\nsasl.password=%s\nssl.ca.location=%s\n' \
     "$dir" "$addrs_ssl" "$(cat "$t/password")" "$t/ca.pem" >"$dir/client-sasl-ssl.properties"
   printf '# SASL_PLAINTEXT listener(s) of the cluster in %s (bootstrap %s)\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=hule\nsasl.password=%s\n' \
     "$dir" "$addrs_plain" "$(cat "$t/password")" >"$dir/client-sasl-plaintext.properties")
  echo "$addrs_plain" >"$dir/sasl-plaintext-bootstrap"
  echo "$addrs_ssl" >"$dir/sasl-ssl-bootstrap"
}

java_opts() {
  echo "-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Dlog4j2.configurationFile=$dir/node-$1/log4j2.yaml -Dkafka.logs.dir=$dir/node-$1"
}

launch() { # node id
  local id="$1"
  # shellcheck disable=SC2046
  nohup java $(java_opts "$id") -cp "$lib/*" kafka.Kafka "$dir/node-$id/server.properties" \
    >"$dir/node-$id/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/node-$id/pid"
}

wait_ready() { # every node answers metadata requests and the cluster shows all of them
  local want deadline=$((SECONDS + ${HULE_KAFKA_START_TIMEOUT:-120})) n
  want="$(cat "$dir/nodes")"
  while [ $SECONDS -lt $deadline ]; do
    for n in $(seq 1 "$want"); do
      alive "$dir/node-$n/pid" || die "node $n exited during start-up; see $dir/node-$n/server.log and stdout.log: $(tail -n 3 "$dir/node-$n/stdout.log" 2>/dev/null)"
    done
    # Each node answers a metadata request itself and sees the whole cluster (a node killed a moment ago may
    # still be listed by the others, so asking one node is not enough).
    local ok=1 addr
    for n in $(seq 1 "$want"); do
      addr="127.0.0.1:$(( $(cat "$dir/port") + n - 1 ))"
      if command -v kcat >/dev/null; then
        kcat -b "$addr" -L -m 5 2>/dev/null | grep -q "^ $want brokers:" || ok=0
      else
        (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null || ok=0
      fi
    done
    [ $ok = 1 ] && return 0
    sleep 0.5
  done
  die "Kafka in $dir did not answer within ${HULE_KAFKA_START_TIMEOUT:-120} s; see $dir/node-*/server.log"
}

stop_all() {
  [ -d "$dir" ] || return 0
  local pids=() f
  for f in "$dir"/node-*/pid; do
    [ -f "$f" ] || continue
    if alive "$f"; then pids+=("$(cat "$f")"); kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
  done
  # Data does not outlive the cluster, so a node that has not shut down cleanly within 10 s is killed.
  local deadline=$((SECONDS + 10)) p
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$dir"/node-*/pid
}

case "$cmd" in
  start)
    if running; then
      [ "$(cat "$dir/nodes")" = "$nodes" ] || die "a $(cat "$dir/nodes")-node cluster already runs in $dir; stop it first"
      bootstrap
      exit 0
    fi
    [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "--nodes must be 1 or 3"
    fetch_jars
    stop_all
    for n in $(seq 1 "$nodes"); do
      for p in $((port + n - 1)) $((port + 100 + n - 1)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
          die "port $p on 127.0.0.1 is in use (another cluster? \`scripts/kafka.sh stop --dir DIR\` or choose --port)"
        fi
      done
    done
    rm -rf "$dir" && mkdir -p "$dir"
    echo "$nodes" >"$dir/nodes"
    echo "$port" >"$dir/port"
    scram=()
    if [ "$secure" = 1 ]; then
      make_tls
      pw="$(cat "$dir/tls/password")"
      scram=(--add-scram "SCRAM-SHA-256=[name=hule,password=$pw]" --add-scram "SCRAM-SHA-512=[name=hule,password=$pw]")
    fi
    cluster_id="$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    [ -n "$cluster_id" ] || die "kafka-storage random-uuid failed"
    for n in $(seq 1 "$nodes"); do
      write_config "$nodes" "$n"
      java -Dlog4j2.configurationFile="$dir/node-$n/log4j2.yaml" -cp "$lib/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$dir/node-$n/server.properties" "${scram[@]}" >"$dir/node-$n/format.log" 2>&1 \
        || die "formatting node $n failed: $(tail -n 3 "$dir/node-$n/format.log")"
    done
    echo "kafka.sh: starting $nodes node(s) of Kafka $version in $dir" >&2
    for n in $(seq 1 "$nodes"); do launch "$n"; done
    wait_ready
    bootstrap
    ;;
  stop)
    stop_all
    ;;
  status)
    running || { echo "kafka.sh: no cluster runs in $dir" >&2; exit 1; }
    bootstrap
    ;;
  kill-node)
    [ -n "$node" ] || die "kill-node needs a node number"
    alive "$dir/node-$node/pid" || die "node $node is not running"
    kill -KILL "$(cat "$dir/node-$node/pid")"
    while alive "$dir/node-$node/pid"; do sleep 0.1; done
    rm -f "$dir/node-$node/pid"
    ;;
  start-node)
    [ -n "$node" ] || die "start-node needs a node number"
    [ -f "$dir/node-$node/server.properties" ] || die "node $node was never started in $dir"
    alive "$dir/node-$node/pid" && die "node $node is already running"
    port="$(cat "$dir/port")"
    launch "$node"
    wait_ready
    bootstrap
    ;;
  classpath)
    fetch_jars
    echo "$lib/*"
    ;;
  *)
    echo "usage: scripts/kafka.sh start [--nodes 1|3] [--port P] [--dir D] | stop | status | kill-node N | start-node N | classpath" >&2
    exit 2
    ;;
esac
