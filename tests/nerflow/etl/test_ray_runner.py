"""What NER tasks on Ray ask for, and where the flow connects (no Ray started here)."""

from __future__ import annotations

import pytest

from nerflow.etl.errors import DeviceUnavailableError
from nerflow.etl.ray_runner import (
    RaySettings,
    describe_slots,
    ner_slots,
    ner_task_options,
    runner_arguments,
    task_device,
    uses_gpus,
)

GPU_CLUSTER = {"CPU": 32.0, "GPU": 4.0, "memory": 1e11}
CPU_CLUSTER = {"CPU": 8.0, "memory": 1e10}


@pytest.mark.parametrize("address", [None, "", " local "])
def test_no_address_or_local_starts_a_ray_for_the_run(address):
    assert runner_arguments(address) == (None, {"include_dashboard": False})


def test_auto_joins_the_cluster_on_this_machine_and_other_addresses_pass_through():
    # prefect_ray's runner would start a new local instance for address="auto".
    assert runner_arguments("auto") == (None, {"address": "auto"})
    assert runner_arguments("10.0.0.5:6379") == ("10.0.0.5:6379", {})
    assert runner_arguments("ray://head:10001") == ("ray://head:10001", {})


def test_gpu_tasks_take_one_gpu_and_keep_their_worker_process():
    assert ner_task_options(gpu=True, cpus_per_task=2) == {"num_cpus": 2, "num_gpus": 1, "max_calls": 0}
    assert ner_task_options(gpu=False, cpus_per_task=3) == {"num_cpus": 3}
    assert task_device(True) == "cuda:0" and task_device(False) == "cpu"


def test_the_device_policy_decides_between_gpus_and_cpu_slots():
    assert uses_gpus("auto", GPU_CLUSTER) and uses_gpus("cuda", GPU_CLUSTER)
    assert not uses_gpus("cpu", GPU_CLUSTER)
    assert not uses_gpus("auto", CPU_CLUSTER)
    with pytest.raises(DeviceUnavailableError, match=r"the Ray cluster has no GPU \(device='cuda'\)"):
        uses_gpus("cuda", CPU_CLUSTER)
    with pytest.raises(ValueError, match="device policy"):
        uses_gpus("tpu", CPU_CLUSTER)


def test_slots_are_gpus_or_cpu_shares_and_never_zero():
    assert ner_slots(GPU_CLUSTER, gpu=True, cpus_per_task=4) == 4
    assert ner_slots(GPU_CLUSTER, gpu=True, cpus_per_task=16) == 2, "CPUs limit the GPU tasks too"
    assert ner_slots(CPU_CLUSTER, gpu=False, cpus_per_task=1) == 8
    assert ner_slots(CPU_CLUSTER, gpu=False, cpus_per_task=3) == 2
    assert ner_slots(CPU_CLUSTER, gpu=False, cpus_per_task=64) == 1, "an autoscaling cluster may grow"
    with pytest.raises(DeviceUnavailableError, match="asks for 64 CPUs and this machine's Ray has 8"):
        ner_slots(CPU_CLUSTER, gpu=False, cpus_per_task=64, can_grow=False)
    assert ner_slots({}, gpu=False, cpus_per_task=1) == 1, "an autoscaling cluster may start empty"
    assert describe_slots(2, gpu=True) == ("ray:gpu", "ray:gpu")


def test_settings_refuse_a_task_without_cpus():
    assert RaySettings().cpus_per_task == 1.0
    with pytest.raises(ValueError, match="cpus_per_task must be a positive number, got 0"):
        RaySettings(cpus_per_task=0)
