"""Fixtures of the faults suite: a real Ray cluster of ``ray start`` processes on this machine.

Each node is one ``ray start --block`` process started in a session of its own, so everything the
node runs (GCS or raylet, its agents, the worker processes that host trials) is found again by
that session id and killed together, the way a machine that vanishes takes all of it. The raylet
puts each worker process in a process group of its own, so a node is its session, not its group.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from checks import free_port

RAY = str(Path(sys.executable).with_name("ray"))
NODE_START_S = 180  # one node up and registered, under a loaded CI machine
NODE_START_ATTEMPTS = 3  # `ray start` gives up after a fixed 15-30 s when the host is busy; try again
KILL_S = 30


def _session_members(leader: int) -> list[int]:
    """Live (not zombie) processes of the session ``leader`` leads, and of its process tree."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        state, ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if state in ("Z", "X"):
            continue
        pid = int(entry)
        parents[pid] = int(ppid)
        if int(session) == leader:
            members.add(pid)
    for pid in parents:  # a process that left the session (setsid) is still in the node's tree
        ancestor, seen = parents.get(pid), 0
        while ancestor and ancestor != 1 and seen < 64:
            if ancestor == leader:
                members.add(pid)
                break
            ancestor, seen = parents.get(ancestor), seen + 1
    return sorted(members)


@dataclass
class RayNode:
    """One ``ray start --block`` process and everything it runs."""

    name: str
    process: subprocess.Popen
    log: Path
    start_s: float = 0.0  # how long it took to come up, failed attempts included

    def members(self) -> list[int]:
        return _session_members(self.process.pid)

    def owns(self, pid: int) -> bool:
        return pid in self.members()

    def kill(self) -> list[int]:
        """SIGKILL every process of the node until none is left; returns the pids it found first."""
        first = self.members()
        deadline = time.monotonic() + KILL_S
        while True:
            members = self.members()
            if not members:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: processes {members} survived SIGKILL for {KILL_S} s")
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=0.2)  # reap the leader, our child
            except subprocess.TimeoutExpired:
                pass
        self.process.wait()
        return first


@dataclass
class LocalCluster:
    """A head and worker nodes on this machine, reachable at ``address`` by clients run with ``env``."""

    address: str
    temp: Path
    env: dict[str, str]
    head: RayNode | None = None
    workers: list[RayNode] = field(default_factory=list)

    @property
    def nodes(self) -> list[RayNode]:
        return [node for node in (self.head, *self.workers) if node is not None]

    def node_of(self, pid: int) -> RayNode | None:
        return next((node for node in self.nodes if node.owns(pid)), None)

    def status(self) -> str:
        """``ray status``: the GCS's view of the cluster."""
        done = subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True, text=True,
                              env=self.env, timeout=120)
        return done.stdout + done.stderr

    def alive_nodes(self) -> int:
        """Nodes ``ray status`` lists as active."""
        active = self.status().split("Active:", 1)[-1].split("Pending:", 1)[0]
        return len(re.findall(r"\bnode_[0-9a-f]+", active))

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()


def _node_ports() -> list[str]:
    """Explicit ports: nodes that share a host must not race for Ray's defaults."""
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            "--include-log-monitor=false", "--disable-usage-stats"]


def _start_node(name: str, arguments: list[str], temp: Path, env: dict[str, str], ready) -> RayNode:
    """Start ``ray start --block ARGUMENTS`` in its own session; poll ``ready(log_text)`` until true.

    ``ray start`` waits a fixed time for its raylet and agents and exits when a busy host makes them
    slower: the node is then cleaned up and started again, up to NODE_START_ATTEMPTS times."""
    failures = []
    started = time.monotonic()
    for attempt in range(1, NODE_START_ATTEMPTS + 1):
        log = temp / f"{name}-{attempt}.log"
        with log.open("w") as sink:
            process = subprocess.Popen([RAY, "start", "--block", *arguments], stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env)
        node = RayNode(name, process, log)
        deadline = time.monotonic() + NODE_START_S
        while process.poll() is None and time.monotonic() < deadline:
            if ready(log.read_text()):
                node.start_s = time.monotonic() - started
                return node
            time.sleep(0.2)
        node.kill()
        failures.append(f"attempt {attempt}: exit {process.returncode}\n{log.read_text()[-1500:]}")
    raise RuntimeError(f"ray node {name} did not start:\n" + "\n".join(failures))


@contextmanager
def _local_cluster(head_resources: list[str], worker_resources: list[list[str]]) -> Iterator[LocalCluster]:
    """A head and workers offering the resources given, as real ``ray start`` processes.

    Nodes start one after the other (two nodes starting at once on one host race for the same
    socket names), each counted as up once its ``ray start`` reports the node started (it waits
    for the node to register with the GCS); ``ray status`` then confirms them all active. A private
    short temp dir keeps the cluster apart from every other Ray on the host; token authentication
    is off for nodes and clients alike. On leaving, every process of every node is killed by its
    session, and the temp dir goes.
    """
    # Short, under /tmp: Ray's socket paths inside it must fit in 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="gt-rc-", dir="/tmp"))
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(temp), RAY_AUTH_MODE="disabled")
    address_file = temp / "ray" / "ray_current_cluster"
    cluster = LocalCluster(address="", temp=temp, env=env)
    try:
        cluster.head = _start_node(
            "head", ["--head", f"--port={free_port()}", *head_resources, "--include-dashboard=false", *_node_ports()],
            temp, env, lambda log: "Ray runtime started" in log and address_file.is_file(),
        )
        cluster.address = address_file.read_text().strip()
        for index, resources in enumerate(worker_resources, 1):
            cluster.workers.append(_start_node(
                f"worker{index}", [f"--address={cluster.address}", *resources, *_node_ports()],
                temp, env, lambda log: "Ray runtime started" in log,
            ))
        deadline = time.monotonic() + NODE_START_S
        while (alive := cluster.alive_nodes()) < len(cluster.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray status shows {alive} of {len(cluster.nodes)} nodes:\n{cluster.status()}")
            time.sleep(1)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_cluster():
    """A Ray head with no CPUs and two worker nodes with one CPU each.

    Every trial therefore runs on a worker node, so killing a worker always takes trials with it,
    while the head (GCS, and the driver's raylet) survives.
    """
    with _local_cluster(["--num-cpus=0"], [["--num-cpus=1"], ["--num-cpus=1"]]) as cluster:
        yield cluster


@pytest.fixture
def one_gpu_node():
    """One node offering two CPUs and one GPU.

    Ray places trials by the resources a node declares, so this GPU is a logical one: trials that
    ask for a share of it are placed as on a real GPU, and (``device: auto``) train on the CPU.
    """
    with _local_cluster(["--num-cpus=2", "--num-gpus=1"], []) as cluster:
        yield cluster
