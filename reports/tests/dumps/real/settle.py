#!/usr/bin/env python3
"""Waits until a real swarm has settled, for reports/tests/dumps/real/make.sh.

Usage: settle.py SOCKET [TIMEOUT_S]

Settled: every replicated service has exactly as many tasks meant to run as its replica count, no task is
on its way (allocated, assigned, accepted, preparing, starting, or meant to stop but still
running), and the tasks' states stayed the same for 3 polls, one a second (listing tasks costs the
manager up to a second for thousands). Tasks left in NEW count as settled once the set of them
stayed the same for 10 polls: the allocator retries them on every pass, so 10 unchanged polls mean
they are stuck, and make.sh keeps such states on purpose (the check must name exactly those
tasks). Prints one line of what it saw; exits 0 settled, 1 not settled within the timeout.
"""

import http.client
import json
import socket
import sys
import time

ON_THE_WAY = {"allocated", "assigned", "accepted", "preparing", "starting"}
STOPPING = {"assigned", "accepted", "preparing", "starting", "running"}


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def get(sock, path):
    conn = Unix(sock)
    conn.request("GET", "/v1.41" + path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return json.loads(body)


def snapshot(sock):
    tasks = get(sock, "/tasks")
    tasks += get(sock, "/tasks?filters=%7B%22runtime%22%3A%5B%22attachment%22%5D%7D")
    services = get(sock, "/services")
    states = {t["ID"]: (t["Status"]["State"], t["DesiredState"]) for t in tasks}
    short = []
    for s in services:
        replicas = s["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
        if replicas is None:
            continue
        meant = sum(1 for t in tasks if t.get("ServiceID") == s["ID"] and t["DesiredState"] == "running")
        if meant != replicas:
            short.append(f'{s["Spec"]["Name"]} {meant}/{replicas}')
    on_the_way = sorted(
        i for i, (state, desired) in states.items()
        if (desired == "running" and state in ON_THE_WAY) or (desired in ("shutdown", "remove") and state in STOPPING)
    )
    new = frozenset(i for i, (state, desired) in states.items() if state == "new" and desired == "running")
    return states, short, on_the_way, new


def main():
    sock = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 180
    start = time.monotonic()
    previous, same, new_same, last_new = None, 0, 0, None
    while True:
        try:
            states, short, on_the_way, new = snapshot(sock)
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            states, short, on_the_way, new = None, [f"API: {e}"], [], frozenset()
        same = same + 1 if states is not None and states == previous else 0
        new_same = new_same + 1 if new == last_new else 0
        previous, last_new = states, new
        waited = time.monotonic() - start
        if states is not None and not short and not on_the_way and same >= 2 and (not new or new_same >= 9):
            stuck = f", {len(new)} stuck in NEW" if new else ""
            print(f"settled after {waited:.0f} s: {len(states)} tasks{stuck}")
            return 0
        if waited > timeout:
            print(
                f"NOT SETTLED after {waited:.0f} s: services with another number of tasks than replicas {short}, "
                f"{len(on_the_way)} tasks on their way, {len(new)} in NEW"
            )
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
