"""Autoscaling: a real sweep on Ray's autoscaler, on this machine.

Ray's fake multi-node provider starts each node the autoscaler launches as a raylet on
this machine, so the autoscaler's decisions are real ones: GPU nodes come up while trials
wait for a GPU share, several small trials share one GPU, and idle nodes go. The worker
node types are cluster.yaml's (names, labels, GPUs), small.

``ray.cluster_utils.AutoscalingCluster`` is not used: it needs a file the pip wheel does
not ship, and it runs ``ray stop --force``, which would end every Ray on the machine. This
cluster is started by ``ray start --head`` with its own temp dir and ports, and ended by
the ids of its own processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from ray.autoscaler._private.fake_multi_node.node_provider import (
    FAKE_HEAD_NODE_ID,
    FAKE_HEAD_NODE_TYPE,
    FakeMultiNodeProvider,
)
from search.local_ray import _free_port

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
SIZE_LABEL = "xstilts/model-size"
#: seconds a worker node may idle before the autoscaler removes it (cluster.yaml: 10 min)
IDLE_TIMEOUT_S = 6.0


class MemoryFakeProvider(FakeMultiNodeProvider):
    """Ray's fake multi-node provider for node types that declare ``memory``.

    A trial asks for a token of Ray's ``memory`` resource (search.tune_trials), so the
    autoscaler launches only node types that declare memory; on AWS `ray up` fills it in
    from the instance type. Ray's fake provider would hand it to the node as a custom
    resource, which Ray refuses: the node measures its own memory instead.
    """

    def create_node_with_resources_and_labels(self, node_config, tags, count, resources,
                                              labels):
        resources = {k: v for k, v in resources.items() if k != "memory"}
        super().create_node_with_resources_and_labels(node_config, tags, count, resources,
                                                      labels)


#: where the autoscaler (another process, with the repository root on its path) finds it
PROVIDER = ".".join(Path(__file__).relative_to(ROOT).with_suffix("").parts
                    + (MemoryFakeProvider.__name__,))


def autoscaling_config() -> dict:
    """cluster.yaml's worker types on this machine: 1 CPU, their GPUs and labels, at most 2
    nodes each, idle for seconds, not minutes. The autoscaler is v2, as `ray up` runs it
    (`ray start` alone runs v1); the provider is the one above, as `external`, which needs
    no defaults file (fake_multinode's example.yaml is not in the wheel)."""
    aws = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    workers = {name: {"resources": {"CPU": 1, "GPU": t["resources"]["GPU"], "memory": 2**31},
                      "labels": dict(t["labels"]), "node_config": {},
                      "min_workers": 0, "max_workers": min(2, t["max_workers"])}
               for name, t in aws["available_node_types"].items()
               if name != aws["head_node_type"]}
    head = aws["available_node_types"][aws["head_node_type"]]["resources"]
    return {
        "cluster_name": "xstilts-local",
        "max_workers": sum(t["max_workers"] for t in workers.values()),
        "upscaling_speed": aws["upscaling_speed"], "idle_timeout_minutes": IDLE_TIMEOUT_S / 60,
        "provider": {"type": "external", "module": PROVIDER,
                     "head_node_id": FAKE_HEAD_NODE_ID, "launch_multiple": True,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "available_node_types": {
            FAKE_HEAD_NODE_TYPE: {"resources": dict(head), "node_config": {},
                                  "min_workers": 0, "max_workers": 0},
            **workers},
        "head_node_type": FAKE_HEAD_NODE_TYPE, "auth": {}, "docker": {}, "file_mounts": {},
        "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [],
        "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


class LocalAutoscalingCluster:
    """A head with the autoscaler of ``config`` on free ports and its own temp dir. Its
    processes, the nodes the autoscaler starts included, are those whose command line
    names that temp dir or its GCS address, and their descendants."""

    def __init__(self, config: dict):
        import ray._private.services as services

        self.root = tempfile.mkdtemp(prefix="xas-", dir="/tmp")  # short: socket paths
        self.port, self.dashboard_port = _free_port(), _free_port()
        self.address = f"{services.get_node_ip_address()}:{self.port}"
        config = {**config, "provider": {**config["provider"], "gcs_address": self.address}}
        self.config_path = os.path.join(self.root, "autoscaling.yaml")
        Path(self.config_path).write_text(yaml.safe_dump(config))

    def start(self) -> None:
        # the head's token mode must be the driver's: a token on disk turns both on
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        env = {**os.environ,
               "RAY_FAKE_CLUSTER": "1", "RAY_enable_autoscaler_v2": "1",
               "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
               "AUTOSCALER_UPDATE_INTERVAL_S": "1", "AUTOSCALER_METRIC_PORT": str(_free_port()),
               # the autoscaler imports MemoryFakeProvider from this file
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
               f"--port={self.port}", f"--temp-dir={self.root}",
               f"--autoscaling-config={self.config_path}", "--num-cpus=0", "--num-gpus=0",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", "--dashboard-agent-listen-port=0",
               f"--ray-client-server-port={_free_port()}", "--disable-usage-stats"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def autoscaler_log(self) -> str:
        log = Path(self.root, "session_latest", "logs", "monitor.log")
        return log.read_text() if log.exists() else ""

    def events(self) -> str:
        """The autoscaler's launches and removals, for messages."""
        return "\n".join(line[:200] for line in self.autoscaler_log().splitlines()
                         if re.search(r"Launching|Removing|Launched|->TERMINATED", line))

    def idle_terminated(self) -> dict[str, str]:
        """Node id -> node type of the nodes the autoscaler terminated after draining them
        as idle. (A drain it requests can fail when work arrives; the node then stays.)"""
        updates = re.findall(r"Update instance (\S+) \(id=[^,]*, type=([^,]*), "
                             r"cloud_instance_id=(\w*), ray_id=\w*\): ([^\n]*)",
                             self.autoscaler_log())
        idle = {node for change, _, node, why in updates
                if change.endswith("->RAY_STOP_REQUESTED") and why.startswith("draining ray: idle")}
        return {node: node_type for change, node_type, node, _ in updates
                if change == "TERMINATING->TERMINATED" and node in idle}

    def pids(self) -> set[int]:
        table = _processes()
        named = re.compile(rf"{re.escape(self.root)}(?![\w-])|{re.escape(self.address)}(?!\d)")
        mine = {pid for pid, (_, cmd) in table.items() if named.search(cmd)}
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _) in table.items():
            children[ppid].append(pid)
        stack = list(mine)
        while stack:  # workers rename themselves ray::...; they are their raylet's children
            for child in children[stack.pop()]:
                if child not in mine:
                    mine.add(child)
                    stack.append(child)
        return mine - {os.getpid()}

    def shutdown(self, *, keep_logs: Path | None = None) -> None:
        """End every process of the cluster; the autoscaler's log is kept in ``keep_logs``."""
        for _ in range(3):  # a raylet may start workers while the first ones end
            pids = self.pids()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while pids and time.monotonic() < deadline:
                    pids = {p for p in pids if _running(p)}
                    time.sleep(0.1)
            if not self.pids():
                break
        if keep_logs is not None:
            for log in Path(self.root, "session_latest", "logs").glob("monitor.*"):
                shutil.copy(log, keep_logs / log.name)
        shutil.rmtree(self.root, ignore_errors=True)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of the running processes (from /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                table[int(entry.name)] = (int(fields[1]), cmd)
    return table


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def autoscaling_cluster(no_ray_here, tmp_path):
    import ray

    cluster = LocalAutoscalingCluster(autoscaling_config())
    try:
        cluster.start()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown(keep_logs=tmp_path)
    assert not cluster.pids(), "processes of the test cluster outlived it"


class Observer(threading.Thread):
    """Samples the cluster twice a second: alive worker nodes by type, and the GPU shares
    that trials' placement groups hold on each node."""

    def __init__(self, label_types: dict[str, str]):
        super().__init__(daemon=True)
        self.label_types = label_types
        self.halt = threading.Event()
        self.t0 = time.monotonic()
        self.first_seen: dict[str, float] = {}   # node id -> seconds since start
        self.types: dict[str, str] = {}          # node id -> node type
        self.alive: set[str] = set()
        self.most_alive = 0
        self.pending = 0                         # trials waiting for a GPU share, last sample
        self.pending_when_added: list[int] = []  # ... in the sample before a node came
        self.shares: set[float] = set()          # GPU shares trials held
        self.busiest: list[float] = []           # the most trials one GPU node held at once
        self.overbooked: list[tuple[str, list[float]]] = []
        self.samples = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.sample()
                self.samples += 1
            except Exception as exc:  # noqa: BLE001 - a failed sample is reported, not fatal
                self.errors.append(repr(exc))
            self.halt.wait(0.5)

    def sample(self) -> None:
        import ray

        now = time.monotonic() - self.t0
        nodes = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != FAKE_HEAD_NODE_ID]
        held: dict[str, list[float]] = defaultdict(list)
        pending = 0
        for pg in ray.util.placement_group_table().values():
            gpu = [(i, b["GPU"]) for i, b in pg["bundles"].items() if b.get("GPU")]
            if pg["state"] == "CREATED":
                for i, share in gpu:
                    held[pg["bundles_to_node_id"][i]].append(share)
            elif pg["state"] == "PENDING" and gpu:
                pending += 1
        self.alive = {n["NodeID"] for n in nodes}
        self.most_alive = max(self.most_alive, len(nodes))
        for n in nodes:
            if n["NodeID"] not in self.first_seen:
                self.first_seen[n["NodeID"]] = now
                self.pending_when_added.append(self.pending)
            self.types[n["NodeID"]] = self.label_types.get(n["Labels"].get(SIZE_LABEL), "?")
        for node, shares in held.items():
            self.shares.update(shares)
            if len(shares) > len(self.busiest):
                self.busiest = sorted(shares)
            if sum(shares) > 1 + 1e-9:
                self.overbooked.append((node, shares))
        self.pending = pending

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def test_sweep_adds_gpu_nodes_while_trials_wait_packs_them_by_size_and_idle_nodes_go(
        autoscaling_cluster, tmp_path):
    import ray

    from search.results import read_table
    from search.sweep import SweepPlan, run_sweep
    from spaces.models import MODEL_SIZES
    from spaces.presets import load_preset

    cluster = autoscaling_cluster

    config = autoscaling_config()
    label_types = {t["labels"][SIZE_LABEL]: name
                   for name, t in config["available_node_types"].items() if "labels" in t}
    assert ray.cluster_resources().get("GPU", 0) == 0  # the head has none: nodes must come

    preset = load_preset("demo")
    trial = ["use_gpu=true"]
    sizes = ["tiny", "base", "large"]
    plan = SweepPlan(storage=str(tmp_path), name="autoscale", base=preset.trial_config(trial),
                     sweep=preset.sweep_config(trial, trainable="surrogate", trials=12,
                                               concurrency=6, asha_grace=0,
                                               surrogate_seconds=6.0, surrogate_reports=3,
                                               space={"model_sizes": sizes}))

    observer = Observer(label_types)
    observer.start()
    started = time.monotonic()
    try:
        run_sweep(plan)
        swept = time.monotonic()
        # nodes go once idle: the idle timeout, then the autoscaler's next rounds
        deadline = swept + IDLE_TIMEOUT_S + 90
        while observer.alive or set(observer.first_seen) - set(cluster.idle_terminated()):
            assert time.monotonic() < deadline, (
                f"worker nodes not removed {time.monotonic() - swept:.0f} s after the sweep: "
                f"alive {sorted(observer.alive)}, seen {observer.types}, autoscaler:\n"
                f"{cluster.events()}")
            time.sleep(0.5)
        emptied = time.monotonic()
    finally:
        observer.stop()
    # a sample may time out on this loaded machine; most must not
    assert len(observer.errors) <= observer.samples // 10, observer.errors[:3]

    rows = read_table(plan.path, "trials").to_pylist()
    assert len(rows) == 12 and {r["status"] for r in rows} == {"finished"}, rows
    used = {r["config/model_size"] for r in rows}

    # added while trials waited (the head has no GPU), removed once idle
    added = sorted(observer.first_seen.values())
    types = sorted(observer.types.values())
    by_type = {t: types.count(t) for t in sorted(set(types))}
    assert added and set(types) <= set(label_types.values()), (observer.first_seen, types)
    assert observer.pending_when_added[0] >= 1, observer.pending_when_added
    removed = cluster.idle_terminated()
    assert {node: removed.get(node) for node in observer.types} == observer.types, (
        observer.types, cluster.events())
    # each trial held the GPU share of its model size, and small ones shared a GPU
    assert observer.shares == {MODEL_SIZES[s].gpu_per_worker for s in used}, (observer.shares, used)
    assert len(observer.busiest) >= 2, f"no GPU node ever held two trials: {observer.busiest}"
    assert not observer.overbooked, observer.overbooked[:3]

    print(f"\nautoscaling: {len(added)} worker nodes added {by_type} while "
          f"{observer.pending_when_added[0]} trials waited (at most {observer.most_alive} at "
          f"once, first {added[0]:.1f} s into the sweep), all removed as idle "
          f"{emptied - swept:.1f} s after it; busiest GPU held {len(observer.busiest)} trials "
          f"(shares {observer.busiest}); sizes {sorted(used)}; sweep {swept - started:.1f} s")
