"""The NER step on Ray (``task_runner="ray"``): a local cluster on 127.0.0.1 of a head without
CPUs and two worker nodes of one CPU each, so every NER task has to go to a worker node.

The worker processes are watched through Ray's ``worker_process_setup_hook``: it wraps the
engine's model loading and the annotate stage in each worker and appends what they did (node,
process, batch) to a file.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from flows.extract_entities import ExtractParams, extract_entities
from nerflow.etl.ray_runner import ner_task_options
from tests.flows.test_extract_entities import DOC_IDS, check_output, params, read_table, write_corpus

RUN_COLUMNS = {"run_id", "ingest_date"}  # differ between two runs by design


def _recording_hook(path: str):
    """A setup hook for Ray workers that records model loads and annotated batches in ``path``.

    Nested, so that cloudpickle ships it by value: the workers need not import this module.
    """

    def hook() -> None:
        import json as json_
        import os as os_

        import ray

        from nerflow.etl import annotating

        def record(event: str, **fields) -> None:
            line = {"event": event, "node": ray.get_runtime_context().get_node_id(), "pid": os_.getpid(), **fields}
            with open(path, "a", encoding="utf-8") as f:  # one short append per line: no interleaving
                f.write(json_.dumps(line) + "\n")

        real_load, real_annotate = annotating.load_model, annotating.annotate_batch

        def load_model(*args, **kwargs):
            record("load")
            return real_load(*args, **kwargs)

        def annotate_batch(batch, config, device):
            record("annotate", batch=batch.batch_id, device=device)
            return real_annotate(batch, config, device)

        annotating.load_model = load_model
        annotating.annotate_batch = annotate_batch

    return hook


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """The cluster, with this process connected as its driver; yields (address, worker node
    ids, the hook's record file)."""
    ray = pytest.importorskip("ray")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    calls = tmp_path_factory.mktemp("ray") / "calls.jsonl"
    local = {"node_ip_address": "127.0.0.1"}
    with pytest.MonkeyPatch.context() as patch:
        # Ray turns a loopback address into the machine's address before connecting (so that
        # other machines could join), where nodes bound to 127.0.0.1 do not listen; a cluster
        # of this machine alone keeps loopback addresses.
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        cluster = Cluster(initialize_head=True, head_node_args={**local, "num_cpus": 0, "include_dashboard": False})
        try:
            # Each worker node also claims a GPU it does not have, so that Ray's handling of GPU
            # tasks can be checked without one (test_gpu_tasks_keep_their_worker_process).
            workers = [cluster.add_node(**local, num_cpus=1, num_gpus=1) for _ in range(2)]
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": _recording_hook(str(calls))})
            try:
                yield cluster.address, {w.node_id for w in workers}, calls
            finally:
                ray.shutdown()
        finally:
            cluster.shutdown()


def _rows(uri: str, name: str) -> tuple[list[str], list[float]]:
    """The table's rows without their scores, sorted, and the scores in the same order.

    Scores are compared apart, within float32 rounding: a Ray worker with one CPU runs torch
    on one thread, the thread runner on all cores, and the matmuls sum in another order.
    """
    table = read_table(uri, name)
    table = table.drop_columns([c for c in table.column_names if c in RUN_COLUMNS])
    keyed = sorted(
        (json.dumps({k: v for k, v in r.items() if k != "score"}, sort_keys=True, default=str), r.get("score"))
        for r in table.to_pylist()
    )
    return [row for row, _ in keyed], [score for _, score in keyed]


# The cluster's processes and two flow runs: about 100 s on a 2-core machine.
@pytest.mark.slow
def test_ner_on_two_ray_workers_writes_what_the_thread_runner_writes(
    prefect_harness, tiny_wordpiece_model_dir, tmp_path, ray_cluster
):
    address, worker_nodes, calls = ray_cluster
    inp = write_corpus(tmp_path / "in")
    threads = extract_entities(params(str(inp), str(tmp_path / "threads"), tiny_wordpiece_model_dir))
    on_ray = extract_entities(
        params(str(inp), str(tmp_path / "ray"), tiny_wordpiece_model_dir, task_runner="ray", ray_address=address)
    )

    check_output(str(tmp_path / "ray"), DOC_IDS)
    for name in ("documents", "entities", "quarantine"):
        ray_rows, ray_scores = _rows(str(tmp_path / "ray"), name)
        thread_rows, thread_scores = _rows(str(tmp_path / "threads"), name)
        assert ray_rows == thread_rows, name
        assert ray_scores == pytest.approx(thread_scores, abs=1e-5), name
    assert (
        (on_ray.batches, on_ray.docs_in, on_ray.entities)
        == (threads.batches, threads.docs_in, threads.entities)
        == (5, 13, threads.entities)
    )
    assert on_ray.devices == ("ray:cpu", "ray:cpu") and threads.devices == ("cpu",)

    events = [json.loads(line) for line in calls.read_text().splitlines()]
    annotated = [e for e in events if e["event"] == "annotate"]
    # Every batch once, on the CPU (cover.png's has nothing to annotate and goes through too).
    assert len(annotated) == len({e["batch"] for e in annotated}) == on_ray.batches
    assert {e["device"] for e in annotated} == {"cpu"}
    assert {e["node"] for e in annotated} == worker_nodes, "both worker nodes did NER work"
    loads = Counter(e["pid"] for e in events if e["event"] == "load")
    batches_per_process = Counter(e["pid"] for e in annotated)
    assert loads == Counter(dict.fromkeys(batches_per_process, 1)), "each worker process loaded the model once"
    assert max(batches_per_process.values()) >= 2, "a worker process annotated several batches with its model"


@pytest.mark.slow
def test_gpu_tasks_keep_their_worker_process(ray_cluster):
    """Ray starts a new process for every GPU task unless told otherwise (``max_calls``), which
    would load the model for every batch; the NER task's options keep the process."""
    import ray

    _, worker_nodes, _ = ray_cluster
    where = ray.remote(**ner_task_options(gpu=True, cpus_per_task=1))(
        lambda: (
            ray.get_runtime_context().get_node_id(),
            os.getpid(),
            ray.get_gpu_ids(),
            os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
    )
    seen = [ray.get(where.remote(), timeout=300) for _ in range(4)]
    processes = {node: {pid for n, pid, _, _ in seen if n == node} for node, _, _, _ in seen}
    assert set(processes) <= worker_nodes
    assert all(len(pids) == 1 for pids in processes.values()), seen
    # Each task saw the one GPU Ray gave it, as its only device: cuda:0 is that GPU.
    assert all(len(gpus) == 1 and visible == str(gpus[0]) for _, _, gpus, visible in seen), seen


def test_a_ray_run_with_nothing_to_do_starts_no_ray(prefect_harness, tiny_wordpiece_model_dir, tmp_path, monkeypatch):
    """Scheduled runs often find nothing new: they must not pay for starting a Ray instance."""
    import prefect_ray

    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "one.jsonl").write_text(json.dumps({"id": "a", "text": "Barack Obama spoke in Chicago ."}) + "\n")
    out = str(tmp_path / "out")
    extract_entities(params(str(inp), out, tiny_wordpiece_model_dir))

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was reached")

    monkeypatch.setattr(prefect_ray.RayTaskRunner, "__enter__", refuse)
    again = extract_entities(params(str(inp), out, tiny_wordpiece_model_dir, task_runner="ray"))
    assert (again.objects_skipped, again.docs_in, again.devices) == (1, 0, ("ray",))


def test_the_command_line_passes_the_ray_options(monkeypatch):
    import nerflow.run_command
    from nerflow.cli import main

    seen = {}
    monkeypatch.setattr(nerflow.run_command, "run_extract", lambda p, **kw: seen.update(p) or 0)
    assert (
        main(
            [
                "run",
                "in",
                "out",
                "--task-runner",
                "ray",
                "--ray-address",
                "ray://head:10001",
                "--ray-cpus-per-task",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    p = ExtractParams(**seen)
    assert (p.task_runner, p.ray_address, p.ray_cpus_per_task) == ("ray", "ray://head:10001", 2.0)
    # Unset options are left out: the parameters' defaults apply.
    seen.clear()
    assert main(["run", "in", "out", "--no-progress"]) == 0
    p = ExtractParams(**seen)
    assert (p.task_runner, p.ray_address) == ("threads", None)


def test_bad_ray_parameters_are_refused_before_a_run():
    with pytest.raises(ValueError, match="ray_cpus_per_task"):
        ExtractParams(input_uri="in", output_uri="out", task_runner="ray", ray_cpus_per_task=0)
    with pytest.raises(ValueError, match="Input should be 'threads' or 'ray'"):
        ExtractParams(input_uri="in", output_uri="out", task_runner="dask")
