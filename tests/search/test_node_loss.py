"""A worker node removed mid-trial: the trial restarts from its checkpoint elsewhere.

A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``): a
head that runs only the driver side (0 CPUs) and two 1-CPU worker nodes.
"""

from __future__ import annotations

import threading
import time

import pytest

from search.local_ray import _free_port
from search.results import read_table
from search.sweep import SweepPlan, run_sweep
from spaces.config import TrialConfig
from spaces.space import SpaceSpec
from spaces.sweep import SweepConfig
from trainables.chaos import read_ledger

pytestmark = pytest.mark.ray

BASE = TrialConfig(intermediate_steps=10, target_epochs=10.0, batch_size=16, max_length=48,
                   max_train_examples=96, max_eval_examples=64, eval_every=5, learning_rate=2e-3,
                   probe_steps=4, probe_examples=48)
#: where the node goes: after a phase-3 checkpoint at target step 5 (every ``eval_every``),
#: or after a phase-2 rung's checkpoint at step 10 of 60 (budget rungs 10, 20, 40)
PHASES = {"target": dict(steps=10, grace=0, at=5), "intermediate": dict(steps=60, grace=10, at=10)}


@pytest.mark.parametrize("phase", list(PHASES))
def test_worker_node_lost_mid_trial_costs_a_restart_from_the_checkpoint(
        phase, tmp_path, monkeypatch, no_ray_here):
    import ray
    from ray.cluster_utils import Cluster

    ledger = tmp_path / "ledger.jsonl"
    port = _free_port()
    monkeypatch.setenv("XSTILTS_LEDGER", str(ledger))  # before the nodes start: they inherit it
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", f"http://127.0.0.1:{port}")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_port": port,
        "dashboard_host": "127.0.0.1"})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        where = PHASES[phase]
        space = SpaceSpec(tasks=("demo-polarity",), batch_size=(16,), target_epochs=(10.0,),
                          intermediate_steps=(where["steps"], where["steps"], 10))
        plan = SweepPlan(storage=str(tmp_path / "runs"), name="nodeloss", base=BASE,
                         sweep=SweepConfig(trials=1, concurrency=1, asha_grace=where["grace"],
                                           max_failures=3, space=space))
        outcome: dict = {}
        sweep = threading.Thread(target=lambda: outcome.update(r=run_sweep(plan)), daemon=True)
        sweep.start()

        deadline = time.monotonic() + 300
        while not any(e["event"] == "checkpoint" and e["phase"] == phase
                      and e["phase_step"] >= where["at"] for e in read_ledger(str(ledger))):
            assert time.monotonic() < deadline and sweep.is_alive(), f"no {phase} checkpoint came"
            time.sleep(0.05)
        first = [e for e in read_ledger(str(ledger)) if e["event"] == "start"][-1]
        doomed = next(n for n in workers if n.node_id == first["node"])
        cluster.remove_node(doomed, allow_graceful=False)
        removed_at = time.time()

        sweep.join(timeout=400)
        assert not sweep.is_alive(), "the sweep did not complete after the node loss"
        rows = read_table(plan.path, "trials").to_pylist()
        assert [r["status"] for r in rows] == ["finished"], rows
        starts = [e for e in read_ledger(str(ledger)) if e["event"] == "start"]
        assert len(starts) == 2, starts
        again = starts[1]
        assert again["node"] != first["node"]                     # on the surviving node
        assert again["phase"] == phase and again["phase_step"] >= where["at"], again  # from there
        print(f"\nnode loss: trial restarted on another node from {phase} step "
              f"{again['phase_step']} {again['time'] - removed_at:.1f} s after the node went; "
              f"sweep done")
    finally:
        ray.shutdown()
        cluster.shutdown()
