#!/bin/bash
# Makes the real-swarm fixtures of reports/tests/dumps/real/: each directory is the state of a
# real dockerd 20.10 swarm (Debian's docker.io) after the operations named below, gathered
# through the Docker Engine API by swarmalloc-live's gather (what `allocsim check --save-dump`
# writes). Run from the repository root, as root, with docker.io and busybox-static installed:
#   cargo test -p swarmalloc-live --lib --no-run     # builds the gatherer
#   bash reports/tests/dumps/real/make.sh
# It takes the team's dockerd lock, starts its own dockerd in a temporary directory, and stops
# it (and only it) at the end. About 6 minutes.
set -euo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
GATHER=$(ls -t target/debug/deps/swarmalloc_live-* | grep -v '\.d$' | head -1 || true)
exec 9>/tmp/swarmalloc-dockerd.lock
flock 9
DIR=$(mktemp -d)
DPID=
export DOCKER_HOST="unix://$DIR/docker.sock"
C="curl -s --unix-socket $DIR/docker.sock"

start() {
  rm -f "$DIR/docker.pid"
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$DIR/root" --exec-root "$DIR/exec" -H "unix://$DIR/docker.sock" \
    --pidfile "$DIR/docker.pid" >>"$DIR/dockerd.log" 2>&1 &
  DPID=$!
  for _ in $(seq 240); do docker version >/dev/null 2>&1 && return; sleep 0.5; done
  echo "dockerd did not start:"; tail -20 "$DIR/dockerd.log"; exit 1
}
stop() {  # graceful
  [ -n "$DPID" ] || return 0
  kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; DPID=
}
crash() {  # kill -9 of dockerd and the containerd it started: a manager crash
  local cd; cd=$(pgrep -P "$DPID" containerd || true)
  kill -9 "$DPID" $cd 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; DPID=
}
cleanup() {
  stop
  # Container shims this dockerd left (found by our own temporary directory only).
  for p in $(pgrep -f "$DIR" || true); do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$DIR" 2>/dev/null || true
}
trap cleanup EXIT
settle() {  # until no task is NEW and none is between NEW and its desired state for 3 polls
  local n=0
  for _ in $(seq 60); do
    if $C http://x/v1.41/tasks | python3 -c '
import json,sys
t=json.load(sys.stdin)
sys.exit(1 if any(x["Status"]["State"] in ("new","allocated") or (x["DesiredState"] in ("shutdown","remove") and x["Status"]["State"] in ("running","starting","ready","preparing","accepted","assigned")) for x in t) else 0)'; then
      n=$((n+1)); [ $n -ge 3 ] && return 0
    else n=0; fi
    sleep 1
  done
}
gather() {
  rm -rf "$OUT/$1"; SWARMALLOC_GATHER_DIR="$OUT/$1" "$GATHER" --ignored --exact gather::tests::gather_the_swarm_docker_host_names --nocapture >"$DIR/gather-$1.log" 2>&1 || { cat "$DIR/gather-$1.log"; }
  grep -E "^(CLEAN|PROBLEMS)" "$DIR/gather-$1.log" | sed "s|^|$1: |"
}
image() {
  mkdir -p "$DIR/img/bin" && cp /bin/busybox "$DIR/img/bin/" && ln -sf busybox "$DIR/img/bin/sh" && ln -sf busybox "$DIR/img/bin/sleep"
  tar -C "$DIR/img" -c . | docker import - local/busybox:1 >/dev/null
}
svc() { docker service create -d --no-resolve-image "$@" >/dev/null; }
CON="--constraint node.labels.none==1"

# Swarm A: SwarmKit's default address pool.
start
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
image
docker network create -d overlay front >/dev/null
docker network create -d overlay back >/dev/null
svc --name web --network front --replicas 3 $CON local/busybox:1 sleep 1d
svc --name app --network front --network back --replicas 1 local/busybox:1 sleep 1d
settle; gather default_pools

docker network create -d overlay --subnet 10.10.0.0/24 --ip-range 10.10.0.0/25 --gateway 10.10.0.100 explicit >/dev/null
docker network create -d overlay --subnet 10.11.0.0/24 --ip-range 10.11.0.128/25 --gateway 10.11.0.254 topgw >/dev/null
svc --name ex --network explicit --replicas 4 $CON local/busybox:1 sleep 1d
svc --name top --network topgw --replicas 5 $CON local/busybox:1 sleep 1d
settle; docker service scale -d top=3 >/dev/null; settle; docker service scale -d top=6 >/dev/null
settle; gather explicit_subnets

docker network create -d overlay --subnet 10.12.0.0/24 --subnet 10.13.0.0/24 twosub >/dev/null
svc --name two --network twosub --replicas 4 $CON local/busybox:1 sleep 1d
docker network create -d overlay --ipv6 --subnet fd00:1::/64 --subnet 10.50.0.0/24 dual >/dev/null
svc --name ds --network dual --replicas 3 $CON local/busybox:1 sleep 1d
settle; gather two_subnets_dual_stack

docker network create -d overlay --attachable att >/dev/null
docker run -d --name c1 --network att local/busybox:1 sleep 1d >/dev/null
docker run -d --name c2 --network att local/busybox:1 sleep 1d >/dev/null
svc --name attsvc --network att --replicas 1 local/busybox:1 sleep 1d
settle; gather attachable

svc --name dns --endpoint-mode dnsrr --network back --replicas 2 $CON local/busybox:1 sleep 1d
svc --name dnsport --endpoint-mode dnsrr --publish mode=host,target=80,published=8081 --replicas 1 $CON local/busybox:1 sleep 1d
svc --name fixed --publish 8080:80 --replicas 2 $CON local/busybox:1 sleep 1d
svc --name dynamic --publish 80 --network front --replicas 2 $CON local/busybox:1 sleep 1d
svc --name hostport --publish mode=host,target=90 --replicas 1 $CON local/busybox:1 sleep 1d
settle; gather dnsrr_and_ports

docker service scale -d web=300 >/dev/null; settle; gather scaled_up
docker service scale -d web=5 >/dev/null; settle; gather scaled_down

docker service update -d --network-add back web >/dev/null; settle
docker service update -d --network-rm front web >/dev/null; settle; gather network_add_rm

docker service rm app ex >/dev/null; gather service_rm_in_progress
settle; gather service_rm
docker network rm explicit >/dev/null; settle; gather network_rm

# The B4 leak: a service on two networks removed, and one of the networks removed at once,
# while its tasks are still stopping (busybox sleep ignores SIGTERM: 10 s of grace).
docker network create -d overlay --subnet 10.60.0.0/28 small >/dev/null
docker network create -d overlay --subnet 10.61.0.0/24 other >/dev/null
svc --name leaky --network small --network other --replicas 3 local/busybox:1 sleep 1d
settle
docker service rm leaky >/dev/null; docker network rm other >/dev/null || echo "network rm other refused"
sleep 15; settle
svc --name fill --network small --replicas 12 $CON local/busybox:1 sleep 1d
sleep 5; gather b4_leak
stop; start; sleep 5; settle; gather b4_after_restart
docker swarm leave -f >/dev/null
cleanup; trap - EXIT

# Swarm B: a custom default address pool, and manager crashes.
DIR=$(mktemp -d); DPID=; export DOCKER_HOST="unix://$DIR/docker.sock"; C="curl -s --unix-socket $DIR/docker.sock"
trap cleanup EXIT
start
docker swarm init --advertise-addr 127.0.0.1 --default-addr-pool 10.20.0.0/16 --default-addr-pool-mask-length 26 >/dev/null
image
docker network create -d overlay pa >/dev/null
docker network create -d overlay pb >/dev/null
svc --name sa --network pa --replicas 3 $CON local/busybox:1 sleep 1d
svc --name sb --network pa --network pb --replicas 3 $CON local/busybox:1 sleep 1d
settle; gather custom_pool
docker service scale -d sa=40 >/dev/null; sleep 0.3; crash; start; settle; gather crash_scale_up
docker service rm sb >/dev/null; crash; start; settle; gather crash_removal
docker swarm leave -f >/dev/null
echo done
