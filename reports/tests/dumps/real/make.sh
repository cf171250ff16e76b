#!/bin/bash
# Makes the real-swarm fixtures of reports/tests/dumps/real/: each directory is the state of a
# real dockerd 20.10 swarm (Debian's docker.io) after the operations named below, saved by
# `allocsim check --save-dump DIR` (the gather through the Docker Engine API), which must check
# the same as the saved directory does. Run from the repository root, as root, with docker.io
# and busybox-static installed:
#   cargo build -p allocsim
#   bash reports/tests/dumps/real/make.sh [SWARM...]     # default: every swarm below
# Each swarm is one dockerd in a temporary directory, started under the team's dockerd lock and
# torn down (dockerd, its containerd, the containers' shims and processes, found by that
# directory) before the lock is released; none holds it for more than about 2 minutes.
# Prints `STATE: VERDICT` per fixture; the settle lines say how long each wait took.
set -euo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
ALLOCSIM=${ALLOCSIM:-target/debug/allocsim}
SETTLE="python3 $OUT/settle.py"
LOCK=/tmp/swarmalloc-dockerd.lock
[ -x "$ALLOCSIM" ] || { echo "$ALLOCSIM is missing: cargo build -p allocsim"; exit 2; }
CON="--constraint node.labels.none==1"
IMG=local/busybox:1

start() {  # start [restart]: a restart waits until the manager is back, not only for the API
  local restart=${1:-}
  # A crash leaves dockerd's and containerd's pid files behind; a stale pid that another process
  # took since would make dockerd refuse to start, or take that process for its containerd.
  rm -f "$DIR/docker.pid" "$DIR/exec/containerd/containerd.pid"
  # `9>&-`: the lock's descriptor must not reach dockerd, containerd and the shims, which
  # outlive a crash and would hold the lock for everyone.
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$DIR/root" --exec-root "$DIR/exec" -H "unix://$DIR/docker.sock" \
    --pidfile "$DIR/docker.pid" >>"$DIR/dockerd.log" 2>&1 9>&- &
  DPID=$!
  # Up to 2 minutes: after a crash the manager replays its raft log and re-elects itself.
  for _ in $(seq 240); do
    if [ -z "$restart" ] && [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = inactive ]; then
      return 0
    fi
    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ] &&
      docker node ls -q >/dev/null 2>&1; then return 0; fi
    kill -0 "$DPID" 2>/dev/null || { echo "dockerd exited:"; tail -20 "$DIR/dockerd.log"; return 1; }
    sleep 0.5
  done
  echo "dockerd did not answer as a manager within 120 s:"; tail -20 "$DIR/dockerd.log"; return 1
}
containerd_pid() { pgrep -P "$DPID" -x containerd || true; }
stop() {  # graceful: SIGTERM, dockerd stops its containers and its containerd
  [ -n "$DPID" ] || return 0
  kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; DPID=
}
crash() {  # kill -9 of dockerd and the containerd it started: a manager crash
  local cd; cd=$(containerd_pid)
  kill -9 "$DPID" $cd 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; DPID=
  for _ in $(seq 50); do [ -z "$cd" ] || ! kill -0 $cd 2>/dev/null && break; sleep 0.1; done
}
cleanup() {
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    local ids; ids=$(docker service ls -q 2>/dev/null || true)
    [ -z "$ids" ] || docker service rm $ids >/dev/null 2>&1 || true
    ids=$(docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    stop
  fi
  # What a crash or a failed stop left: containerd and the containers' shims name our directory
  # on their command lines; the containers' processes are the shims' children.
  local pids; pids=$(pgrep -f -- "$DIR/" || true)
  for p in $pids; do
    for c in $(pgrep -P "$p" || true); do kill -9 "$c" 2>/dev/null || true; done
    kill -9 "$p" 2>/dev/null || true
  done
  findmnt -rn -o TARGET | grep "^$DIR/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$DIR" 2>/dev/null || true
}
settle() { $SETTLE "$DIR/docker.sock" "${1:-180}" | sed 's/^/  /'; }
gather() {  # gather NAME: the live swarm into $OUT/NAME, checked live and read back
  local rc=0
  rm -rf "${OUT:?}/$1"
  "$ALLOCSIM" check --save-dump "$OUT/$1" --json >"$DIR/live-$1.json" 2>"$DIR/live-$1.err" || rc=$?
  if [ $rc -ge 2 ]; then echo "$1: allocsim check of the live swarm failed ($rc):"; cat "$DIR/live-$1.err"; return 1; fi
  rc=0
  "$ALLOCSIM" check "$OUT/$1" --json >"$DIR/saved-$1.json" || rc=$?
  if [ $rc -ge 2 ]; then echo "$1: the saved dump does not read back"; return 1; fi
  python3 - "$DIR/live-$1.json" "$DIR/saved-$1.json" "$1" <<'PY'
import json, sys
live, saved = (json.load(open(f)) for f in sys.argv[1:3])
differ = [k for k in ("verdict", "objects", "problems", "queue") if live[k] != saved[k]]
kinds = {}
for p in saved["problems"]:
    kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
verdict = "CLEAN" if not saved["problems"] else "PROBLEMS: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
print(f"{sys.argv[3]}: {verdict}")
if differ:
    print(f"{sys.argv[3]}: the saved dump checks differently from the live swarm in {differ}")
    sys.exit(1)
PY
}
image() {
  mkdir -p "$DIR/img/bin" && cp /bin/busybox "$DIR/img/bin/" && ln -sf busybox "$DIR/img/bin/sh" &&
    ln -sf busybox "$DIR/img/bin/sleep"
  tar -C "$DIR/img" -c . | docker import - $IMG >/dev/null
}
svc() { docker service create -d --no-resolve-image "$@" >/dev/null; }
net() { docker network create -d overlay "$@" >/dev/null; }

# One swarm: under the lock, in a directory of its own, torn down whatever happens.
swarm() {
  local name=$1; shift
  (
    exec 9>"$LOCK"
    flock 9
    DIR=$(mktemp -d /tmp/swarmalloc-real.XXXXXX); DPID=
    export DOCKER_HOST="unix://$DIR/docker.sock"
    trap cleanup EXIT
    echo "== swarm $name ($DIR), $(date +%T)"
    start
    "$@"
    echo "== swarm $name done, $(date +%T)"
  )
}

# Swarm basic: SwarmKit's default address pool, normal operations one after the other.
basic() {
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null; image
  net front; net back
  svc --name web --network front --replicas 3 $CON $IMG sleep 1d
  svc --name app --network front --network back --replicas 1 $IMG sleep 1d
  settle; gather default_pools

  # An ip-range below a mid-range gateway, and one above with the gateway at the top.
  net --subnet 10.10.0.0/24 --ip-range 10.10.0.0/25 --gateway 10.10.0.100 explicit
  net --subnet 10.11.0.0/24 --ip-range 10.11.0.128/25 --gateway 10.11.0.254 topgw
  svc --name ex --network explicit --replicas 4 $CON $IMG sleep 1d
  svc --name top --network topgw --replicas 5 $CON $IMG sleep 1d
  settle; docker service scale -d top=3 >/dev/null; settle; docker service scale -d top=6 >/dev/null
  settle; gather explicit_subnets

  net --subnet 10.12.0.0/24 --subnet 10.13.0.0/24 twosub
  svc --name two --network twosub --replicas 4 $CON $IMG sleep 1d
  settle; gather two_subnets

  # Standalone containers on an attachable network: their network-attachment tasks.
  net --attachable att
  docker run -d --name c1 --network att $IMG sleep 1d >/dev/null
  docker run -d --name c2 --network att $IMG sleep 1d >/dev/null
  svc --name attsvc --network att --replicas 1 $IMG sleep 1d
  settle; gather attachable

  # DNSRR on a network without ports, with neither, with a host port; fixed, dynamic and
  # host-mode published ports.
  svc --name dns --endpoint-mode dnsrr --network back --replicas 2 $CON $IMG sleep 1d
  svc --name dnsbare --endpoint-mode dnsrr --replicas 1 $CON $IMG sleep 1d
  svc --name dnsport --endpoint-mode dnsrr --publish mode=host,target=80,published=8081 --replicas 1 $CON $IMG sleep 1d
  svc --name fixed --publish 8080:80 --replicas 2 $CON $IMG sleep 1d
  svc --name dynamic --publish 80 --network front --replicas 2 $CON $IMG sleep 1d
  svc --name hostport --publish mode=host,target=90 --replicas 1 $CON $IMG sleep 1d
  settle; gather dnsrr_and_ports
  # The engine writes an endpoint for a DNSRR service without ports where SwarmKit stores none
  # (issue 15 point 5): keep the two out of the later states.
  docker service rm dns dnsbare >/dev/null

  # A few hundred constrained replicas, on a network large enough for them, and back.
  net --subnet 10.30.0.0/22 big
  svc --name many --network big --replicas 3 $CON $IMG sleep 1d
  settle; docker service scale -d many=300 >/dev/null; settle; gather scaled_up
  docker service scale -d many=3 >/dev/null; settle; gather scaled_down

  docker service update -d --network-add back web >/dev/null; settle
  docker service update -d --network-rm front web >/dev/null; settle; gather network_add_rm

  # app's task runs a container (busybox's sleep ignores SIGTERM: 10 s of grace), so right
  # after the removal its task is still stopping.
  docker service rm app ex >/dev/null; gather service_rm_in_progress
  settle; gather service_rm
  docker network rm explicit >/dev/null; settle; gather network_rm

  # Really stuck: 70 replicas on a /26 (61 addresses, one of them the VIP) leave 10 in NEW.
  net --subnet 10.14.0.0/26 tiny
  svc --name crowd --network tiny --replicas 70 $CON $IMG sleep 1d
  settle; gather exhausted
}

# Swarm dual_stack: kept apart, so that its network does not sit in every other fixture.
dual_stack() {
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null; image
  net --ipv6 --subnet fd00:1::/64 --subnet 10.50.0.0/24 dual
  svc --name ds --network dual --replicas 3 $CON $IMG sleep 1d
  settle; gather dual_stack
}

# Swarm custom_pool: a custom default address pool, and manager crashes in the middle of a
# scale-up and of a removal.
custom_pool() {
  docker swarm init --advertise-addr 127.0.0.1 --default-addr-pool 10.20.0.0/16 \
    --default-addr-pool-mask-length 26 >/dev/null
  image
  net pa; net pb
  svc --name sa --network pa --replicas 3 $CON $IMG sleep 1d
  svc --name sb --network pa --network pb --replicas 2 $IMG sleep 1d
  settle; gather custom_pool
  docker service scale -d sa=50 >/dev/null; sleep 0.3; crash; start restart; settle; gather crash_scale_up
  # sb's containers take 10 s to stop: the crash comes while its tasks are stopping.
  docker service rm sb >/dev/null; sleep 1; crash; start restart; settle; gather crash_removal
}

# Swarm b4_leak: the real B4 leak. A service on two networks is removed, and at once the first
# of its networks, while its tasks are still stopping (10 s of grace): when they stop, the
# allocator fails to release their addresses on the first network (gone) and never reaches the
# second, so their addresses on `small` stay taken in its memory. A service filling `small`
# then leaves as many tasks in NEW. The check reads the store, where those addresses are free:
# it reports exactly the tasks in NEW and says the next pass gives them addresses; a restart
# (which rebuilds the allocator's memory from the store) does that.
b4_leak() {
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null; image
  net --subnet 10.60.0.0/28 small   # 13 addresses besides the gateway
  net --subnet 10.61.0.0/24 other
  svc --name leaky --network other --network small --replicas 3 $IMG sleep 1d
  settle
  docker service rm leaky >/dev/null
  local removed=
  for _ in $(seq 40); do
    if docker network rm other >/dev/null 2>&1; then removed=yes; break; fi
    sleep 0.2
  done
  echo "  network rm other while leaky's tasks stop: ${removed:-refused for 8 s}"
  # At once: the node still has its copy of other (GET /networks lists it), the store does not.
  gather b4_network_rm_in_progress
  settle
  # VIP + 12 tasks = all 13 addresses: the 3 leaked ones leave 3 tasks in NEW.
  svc --name fill --network small --replicas 12 $CON $IMG sleep 1d
  settle; gather b4_leak
  stop; start restart; settle; gather b4_after_restart
}

SWARMS=("$@")
[ ${#SWARMS[@]} -gt 0 ] || SWARMS=(basic dual_stack custom_pool b4_leak)
for s in "${SWARMS[@]}"; do swarm "$s" "$s"; done
echo done
