"""How many runs a Ray cluster holds at once (issue 24): computed from its nodes as ``ray.nodes()`` lists
them, and said in the line the CLI, Preferences and the queue show."""

from __future__ import annotations

from splatstudio.pipeline.cluster import ClusterInfo, stage_slots
from splatstudio.pipeline.plan import stage_argv


def node(alive: bool = True, **resources: float) -> dict:
    return {"Alive": alive, "Resources": resources}


def test_a_stage_takes_one_whole_cpu_of_a_node():
    assert stage_slots([]) == 0
    assert stage_slots([node(CPU=0), node(CPU=1), node(CPU=1)]) == 2  # the test cluster: a head with no CPU
    assert stage_slots([node(CPU=1.5), node(CPU=2.5)]) == 3  # a half CPU on each holds no stage
    assert stage_slots([node(CPU=16), node(False, CPU=16)]) == 16  # a dead node offers nothing


def test_with_gpus_a_run_never_waits_at_training_for_one():
    assert stage_slots([node(CPU=16, GPU=1), node(CPU=8)]) == 1
    assert stage_slots([node(CPU=16, GPU=2), node(CPU=8, GPU=1)]) == 3
    assert stage_slots([node(CPU=2, GPU=4)]) == 2


def test_the_line_says_what_the_cluster_offers():
    info = ClusterInfo("ray://h:10001", 3, 2.0, 0.0, 3 * 2**30, 2)
    assert info.describe() == "3 nodes, 2 CPUs, no GPU, 3.0 GiB memory; room for 2 runs at once"
    one = ClusterInfo("ray://h:10001", 1, 8.0, 1.0, 2**30, 1)
    assert one.describe() == "1 node, 8 CPUs, 1 GPU, 1.0 GiB memory; room for 1 run at once"


def test_a_stage_process_that_follows_a_stage_on_a_cluster():
    assert stage_argv("train", "/p", "r1")[-5:] == ["train", "--project", "/p", "--run-id", "r1"]
    assert "--executor" not in stage_argv("train", "/p", "r1", executor="local")
    assert stage_argv("train", "/p", "r1", executor="ray://h:10001")[-2:] == ["--executor", "ray://h:10001"]
