"""cluster.yaml: Ray's own launcher checks accept it, they refuse a broken copy, and the
promises its comments make hold (no training on the head, GPU types sized by
spaces/models.py, pinned installs, token auth, no credentials, every key commented).

Pure: no cluster, no AWS, no network. What `ray up` does after these checks (resource
autodetection, bootstrap_aws) calls AWS through boto3 and is left out.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from spaces.models import MODEL_SIZES

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
SIZE_LABEL = "xstilts/model-size"
#: the node label that gives a GPU type's memory in GiB (as torch reports it, rounded down)
GPU_MEMORY_LABEL = "xstilts/gpu-memory-gib"
PAPER_PRESETS = ("paper-base", "paper-large")
NODES = "available_node_types"
#: what must never be written in the file: AWS key ids, secrets, inline tokens, PEM keys
CREDENTIALS = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----"
                         r"|(?i:aws_secret_access_key|aws_session_token|password"
                         r"|RAY_AUTH_TOKEN\s*=)")


@pytest.fixture(scope="module")
def text() -> str:
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def raw(text) -> dict:
    return yaml.safe_load(text)


def prepared(config: dict) -> dict:
    """What `ray up` and the head's autoscaler check before any cloud call: Ray's AWS
    defaults merged in, setup commands merged per role, then the schema and its
    cross-field rules (ray/autoscaler/ray-schema.json)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(config))
    validate_config(config)
    return config


def workers(config: dict) -> dict[str, dict]:
    return {name: t for name, t in config[NODES].items()
            if name != config["head_node_type"]}


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints file."""
    found = (re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
             for line in path.read_text().splitlines())
    return {m[1].lower(): m[2] for m in found if m}


def test_ray_accepts_it(raw):
    from ray._private.label_utils import validate_node_label_syntax, validate_node_labels
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    prepared(raw)
    # the head's autoscaler (v2, Ray's default) parses the same file into node types
    autoscaling = AutoscalingConfig(copy.deepcopy(raw), skip_content_hash=True)
    assert set(autoscaling.get_node_type_configs()) == set(raw[NODES])
    assert autoscaling.get_idle_timeout_s() and autoscaling.get_idle_timeout_s() > 0
    for node_type in raw[NODES].values():
        validate_node_labels(node_type.get("labels", {}))
        validate_node_label_syntax(node_type.get("labels", {}))


def changed(config: dict, **changes) -> dict:
    """A copy of ``config`` with ``a__b__c=value`` set at ``config[a][b][c]``."""
    config = copy.deepcopy(config)
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = config
        for part in parents:
            node = node[part]
        node[key] = value
    return config


@pytest.mark.parametrize(("changes", "error"), [
    ({"max_worker": 12}, jsonschema.ValidationError),  # unknown top-level key
    ({f"{NODES}__gpu_base__min_workers": "0"}, jsonschema.ValidationError),
    ({f"{NODES}__gpu_base__resources__GPU": -1}, jsonschema.ValidationError),
    ({f"{NODES}__gpu_large__min_worker": 0}, jsonschema.ValidationError),  # typo in a node type
    ({"auth__ssh_key_file": "id_rsa"}, jsonschema.ValidationError),  # unknown auth key
    ({"head_node_type": "gpu_huge"}, ValueError),  # not a node type
    ({"max_workers": 0, f"{NODES}__gpu_base__min_workers": 1}, ValueError),  # mins over the max
], ids=["top-level-key", "min-as-string", "negative-gpu", "node-type-key", "auth-key",
        "head-type", "min-over-max"])
def test_a_broken_copy_is_refused(raw, changes, error):
    with pytest.raises(error):
        prepared(changed(raw, **changes))


def test_head_runs_no_training(raw):
    head = raw[NODES][raw["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and head["resources"].get("GPU") == 0
    assert head.get("max_workers", 0) == 0


def test_gpu_types_are_sized_by_the_resource_model(raw):
    sizes = {}
    assert raw["idle_timeout_minutes"] > 0
    for name, node_type in workers(raw).items():
        size = MODEL_SIZES[node_type["labels"][SIZE_LABEL]]
        sizes[size.name] = name
        gpus, cpus = node_type["resources"].get("GPU", 0), node_type["resources"].get("CPU", 0)
        assert gpus >= 1, f"{name} has no GPU"
        per_node = int(gpus / size.gpu_per_worker)  # trials of its size that share its GPUs
        assert per_node >= 1 and cpus >= per_node * size.cpu_per_worker, name
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= raw["max_workers"]
        assert node_type["node_config"]["IamInstanceProfile"], f"{name}: no role for S3"
    assert {"base", "large"} <= set(sizes)


def _node_type_of(raw, size: str) -> tuple[str, float]:
    """The worker type labelled with model ``size`` and its GPU memory label, in GiB."""
    (name,) = [name for name, t in workers(raw).items() if t["labels"][SIZE_LABEL] == size]
    return name, float(raw[NODES][name]["labels"][GPU_MEMORY_LABEL])


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_every_trial_of_a_paper_preset_fits_the_gpu_of_its_node_type(raw, preset):
    """Each model size of the preset's space, at each batch size of its space (for every
    target's recipe), fits the GPU memory label of the node type labelled with that size,
    at the preset's packing, with the worst-case batch shapes of the space's tasks: what
    `xstilts run PRESET --set gpu_memory_gib=GIB` checks before launch."""
    from spaces.config import ConfigError
    from spaces.packing import batch_shapes, gpu_share, packing_problem
    from spaces.presets import load_preset
    from spaces.packing import sweep_packing_problems as packing_problems

    p = load_preset(preset)
    for target in (p.trial_config().target, *p.targets):
        overrides = [f"target={target}"]
        base, sweep = p.trial_config(overrides), p.sweep_config(overrides)
        assert base.use_gpu and base.train_step == "lean", preset
        for size in sweep.space.model_sizes:
            node_type, gib = _node_type_of(raw, size)
            cfg = base.replace(gpu_memory_gib=gib)  # the trial config itself is checked here
            assert packing_problems(cfg, sweep) == [], (preset, target, node_type)
            shapes = batch_shapes(cfg, sweep.space.tasks)
            for batch in sweep.space.batch_size:
                problem = packing_problem(cfg, size, batch, shapes)
                assert problem is None, f"{preset} {target} on {node_type}: {problem}"
            if target != "xnli":
                continue
            # the shapes docs/cluster.md's arithmetic takes, at batch 32
            assert {t: shapes[t] for t in ("commonsenseqa", "cosmosqa", "hellaswag")} == {
                "commonsenseqa": (5, 256), "cosmosqa": (4, 256), "hellaswag": (4, 256)}
            assert cfg.batch_size == 32 and cfg.max_length == 256
            # the check can fail: half the preset's share is too small, and says so
            half = gpu_share(cfg, size) / 2
            with pytest.raises(ConfigError) as refused:
                cfg.replace(gpu_share={size: half})
            (problem,) = refused.value.problems
            assert "commonsenseqa's 5 choices per example needs about" in problem, problem
            assert f"gpu_share.{size}={half:g} of a {gib:g}-GiB GPU" in problem, problem
            assert f"raise gpu_share.{size} to at least" in problem, problem


def test_every_gpu_type_says_how_much_memory_its_gpu_has(raw):
    for name, node_type in workers(raw).items():
        gib = float(node_type["labels"][GPU_MEMORY_LABEL])
        assert 8 <= gib <= 200, f"{name}: {gib} GiB is not a GPU's memory"


def _launches(raw, gpu: float, *, count: int, size: str | None) -> dict[str, int]:
    """Node types Ray's autoscaler would launch on an empty cluster for ``count`` trials,
    each a Train worker group of one worker (1 CPU + ``gpu``), i.e. a placement group;
    ``size`` adds a label selector on the model-size label. Ray-internal API of the pinned
    Ray: if an upgrade moves it, re-check what cluster.yaml says about placement."""
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig
    from ray.autoscaler.v2.scheduler import ResourceDemandScheduler, SchedulingRequest
    from ray.autoscaler.v2.utils import ResourceRequestUtil
    from ray.core.generated.autoscaler_pb2 import GangResourceRequest
    from ray.core.generated.common_pb2 import LabelSelectorOperator

    logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)
    autoscaling = AutoscalingConfig(copy.deepcopy(raw), skip_content_hash=True)
    selector = None
    if size:
        selector = [[(SIZE_LABEL, LabelSelectorOperator.Value("LABEL_OPERATOR_IN"), [size])]]
    request = ResourceRequestUtil.make({"CPU": 1, "GPU": gpu}, label_selectors=selector)
    reply = ResourceDemandScheduler().schedule(SchedulingRequest(
        disable_launch_config_check=True, node_type_configs=autoscaling.get_node_type_configs(),
        max_num_nodes=autoscaling.get_max_num_nodes(),
        gang_resource_requests=[GangResourceRequest(requests=[request]) for _ in range(count)]))
    assert not reply.infeasible_gang_resource_requests
    return {launch.instance_type: launch.count for launch in reply.to_launch}


def test_the_autoscaler_places_trials_where_they_fit(raw):
    by_size = {t["labels"][SIZE_LABEL]: name for name, t in workers(raw).items()}
    large = raw[NODES][by_size["large"]]
    for size in ("base", "large"):
        gpu = MODEL_SIZES[size].gpu_per_worker
        per_node = int(raw[NODES][by_size[size]]["resources"]["GPU"] / gpu)
        # trials that select their label get their own node type, packed by GPU share
        assert _launches(raw, gpu, count=8, size=size) == {by_size[size]: -(-8 // per_node)}
        # today's trials carry no label: they must still get a GPU that holds a large model
        assert set(_launches(raw, gpu, count=large["max_workers"], size=None)) == {by_size["large"]}


def test_installs_are_pinned(raw):
    constraints = pins(ROOT / "constraints.txt")
    config = prepared(raw)
    for role in ("head_setup_commands", "worker_setup_commands"):
        commands = "\n".join(config[role])
        assert re.findall(r"ray\[[a-z,]+\]==(\S+?)\"", commands) == [constraints["ray"]], role
        refs = re.findall(r"xstilts @ git\+https://github\.com/[^/\s]+/xstilts@([^\"\s]+)",
                          commands)
        assert len(refs) == 1 and refs[0] not in ("main", "master", "HEAD"), role
        assert f"/xstilts/{refs[0]}/constraints.txt" in commands, f"{role}: deps not pinned"
    head = "\n".join(config["head_setup_commands"])
    gpu = "\n".join(config["worker_setup_commands"])
    assert f"torch=={constraints['torch']}" in head and "download.pytorch.org/whl/cpu" in head
    assert "whl/cpu" not in gpu and "+cpu" not in gpu  # GPU nodes keep PyPI's CUDA build
    assert "boto3" in head  # the autoscaler on the head talks to EC2 through it


def test_no_credentials_and_no_open_ports(raw, text):
    found = CREDENTIALS.search(text)
    assert found is None, f"looks like a credential: {found and found[0]!r}"
    assert "IpPermissions" not in raw["provider"].get("security_group", {})
    for role in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token XSTILTS_NODE_LABELS=1 ray start" in raw[role][-1], role
    assert "~/.ray/auth_token" in raw["file_mounts"].values()
    assert raw[NODES][raw["head_node_type"]]["node_config"]["IamInstanceProfile"]
    assert "--storage s3://BUCKET/sweeps" in text


def test_every_key_is_commented(text):
    lines = text.splitlines()
    bare = [f"{i + 1}: {line}" for i, line in enumerate(lines)
            if line.strip() and not line.lstrip().startswith("#")
            and not re.search(r"\s#", line) and not (i and lines[i - 1].lstrip().startswith("#"))]
    assert not bare, "lines without a comment on or above them:\n" + "\n".join(bare)


def test_trials_select_their_node_type_when_the_nodes_carry_labels(monkeypatch, tmp_path):
    from spaces.config import TrialConfig
    from trainables.trial import NODE_LABEL, NODE_LABELS_ENV, make_trainer

    assert NODE_LABEL == SIZE_LABEL
    for size in ("base", "large"):
        cfg = TrialConfig(model_size=size)
        monkeypatch.delenv(NODE_LABELS_ENV, raising=False)
        plain = make_trainer(cfg, storage_path=str(tmp_path), name="plain")
        assert not plain.scaling_config.label_selector  # local nodes carry no labels
        monkeypatch.setenv(NODE_LABELS_ENV, "1")  # as cluster.yaml's start commands set it
        labelled = make_trainer(cfg, storage_path=str(tmp_path), name="labelled")
        assert labelled.scaling_config.label_selector == {NODE_LABEL: size}
