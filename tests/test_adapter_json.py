"""cc-adapter: Slurm JSON of 22.05 (recorded from the real Slurm) and 24.11 (shape per upstream) -> payloads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cc.adapter.config import parse_config
from cc.adapter.mapping import cc_state, is_finished, never_ran, resources, start_payload, stop_payload
from cc.adapter.slurmjson import (
    SlurmFormatError,
    expand_hostlist,
    gpu_indices,
    parse_nodes,
    parse_sacct,
    parse_squeue,
    slurm_int,
    slurm_str,
    tres_count,
    tres_str_count,
)

FIX = Path(__file__).parent / "fixtures" / "slurm"
V22, V24 = FIX / "22.05", FIX / "24.11"
MANIFEST = json.loads((V22 / "manifest.json").read_text())
IDS = MANIFEST["jobs"]


def load(path: Path):
    return json.loads(path.read_text())


def cfg(**kw):
    base = {"ccRestUrl": "http://x", "ccRestJwt": "t"}
    base.update(kw)
    return parse_config(base)


def merged(gen: Path, squeue: str = "squeue.json"):
    jobs = {j.job_id: j for j in parse_sacct(load(gen / "sacct.json"))}
    for sq in parse_squeue(load(gen / squeue)):
        if sq.job_id in jobs:
            jobs[sq.job_id].merge_controller(sq)
    return jobs


# -- scalars --------------------------------------------------------------------------------

def test_slurm_int_and_str_accept_both_generations():
    assert slurm_int(42) == 42
    assert slurm_int({"set": True, "infinite": False, "number": 42}) == 42
    assert slurm_int({"set": False, "infinite": False, "number": 7}) is None
    assert slurm_int({"set": True, "infinite": True, "number": 0}) is None
    assert slurm_int(None) is None and slurm_int("12") == 12 and slurm_int(True) is None
    assert slurm_str(["RUNNING"]) == "RUNNING" and slurm_str([]) == "" and slurm_str(None) == ""
    assert slurm_str("COMPLETED") == "COMPLETED"


def test_hostlist_expansion():
    assert expand_hostlist("node[01-03,07],gpu1") == ["node01", "node02", "node03", "node07", "gpu1"]
    assert expand_hostlist("a[1-2]b[3-4]") == ["a1b3", "a1b4", "a2b3", "a2b4"]
    assert expand_hostlist("None assigned") == [] and expand_hostlist("") == []
    assert expand_hostlist("n[008-010]") == ["n008", "n009", "n010"]
    with pytest.raises(SlurmFormatError, match="bad range"):
        expand_hostlist("n[a-b]")


def test_gres_and_tres():
    assert gpu_indices("gpu:2(IDX:0-1)") == [0, 1]
    assert gpu_indices("gpu:h100:4(IDX:0,2-3)") == [0, 2, 3]
    assert gpu_indices("gpu:a100:1(IDX:3),nic:1") == [3]
    assert gpu_indices("nic:1") == [] and gpu_indices("") == []
    assert tres_str_count("cpu=6,node=2,billing=6,gres/gpu=2", "gres/gpu") == 2
    assert tres_str_count("cpu=6,gres/gpu:h100=2,gres/gpu:h200=1", "gres/gpu") == 3
    assert tres_str_count("cpu=6", "gres/gpu") is None
    entries = [{"type": "gres", "name": "gpu:h100", "count": 2}, {"type": "gres", "name": "gpu:h200", "count": 1}]
    assert tres_count(entries, "gres", "gpu") == 3
    assert tres_count(entries + [{"type": "gres", "name": "gpu", "count": 3}], "gres", "gpu") == 3
    assert tres_count([{"type": "energy", "name": None, "count": None}], "cpu") is None


def test_bad_json_named():
    with pytest.raises(SlurmFormatError, match="no 'jobs' list"):
        parse_sacct({"errors": ["boom"]})
    with pytest.raises(SlurmFormatError, match="expected a JSON object"):
        parse_squeue([])


# -- 22.05, recorded --------------------------------------------------------------------------

def test_2205_sacct_fields():
    jobs = {j.job_id: j for j in parse_sacct(load(V22 / "sacct.json"))}
    j = jobs[IDS["multinode_gpu"]]
    assert (j.cluster, j.user, j.account, j.partition, j.name) == ("ccslurm", "root", "proj2", "main", "mngpu")
    assert j.nodes == ["node01", "node02"] and j.num_nodes == 2
    assert j.num_hwthreads == 6 and j.num_acc == 2  # 5 tasks -> 3 cores x 2 threads; one GPU per node
    assert j.state == "COMPLETED" and is_finished(j) and j.end_time > j.start_time
    assert jobs[IDS["exclusive"]].time_limit_min == 5
    assert jobs[IDS["simple"]].time_limit_min is None  # unlimited
    tasks = [jobs[i] for i in IDS["array_tasks"]]
    assert {t.array_job_id for t in tasks} == {IDS["array"]}
    assert jobs[IDS["failing"]].state == "FAILED"
    assert jobs[IDS["cancel_running"]].state == "CANCELLED"
    assert jobs[IDS["timeout"]].state == "TIMEOUT"
    run = jobs[IDS["running"]]
    assert run.state == "RUNNING" and not is_finished(run) and run.end_time == 0


def test_2205_cancelled_while_pending_is_never_reported():
    (j,) = parse_sacct(load(V22 / "sacct_pending_cancelled.json"))
    assert j.job_id == IDS["cancel_pending"] and j.state == "CANCELLED" and j.nodes == []
    assert never_ran(j)
    sq = {j.job_id: j for j in parse_squeue(load(V22 / "squeue_running.json"))}
    assert sq[IDS["cancel_pending"]].state == "PENDING" and never_ran(sq[IDS["cancel_pending"]])


def test_2205_allocation_gpus_and_hwthreads():
    jobs = merged(V22, "squeue_running.json")
    topo = parse_nodes(load(V22 / "sinfo.json"))
    assert topo["node01"].cores_per_socket == 2 and topo["node01"].threads_per_core == 2
    c = cfg(gpuPciAddrs={"^node0[1-4]$": ["00000000:01:00.0", "00000000:02:00.0"]})
    j = jobs[IDS["multinode_gpu"]]
    res = resources(j, c, topo)
    assert [r["hostname"] for r in res] == ["node01", "node02"]
    # 22.05 lists allocated (socket, core) pairs; Slurm CPU id = (s * 2 + c) * 2 + t
    assert res[0]["hwthreads"] == [6, 7]  # socket 1 core 1
    assert res[1]["hwthreads"] == [0, 1, 4, 5]  # socket 0 core 0, socket 1 core 0
    assert res[0]["accelerators"] == ["00000000:01:00.0"] and res[1]["accelerators"] == ["00000000:01:00.0"]
    assert sum(len(r["hwthreads"]) for r in res) == j.num_hwthreads
    ex = jobs[IDS["exclusive"]]
    (r,) = resources(ex, c, topo)
    assert r["hwthreads"] == list(range(8)) and r["accelerators"] == ["00000000:01:00.0", "00000000:02:00.0"]
    p = start_payload(ex, c, topo)
    assert p["shared"] == "none" and p["walltime"] == 300 and p["numAcc"] == 2


def test_2205_start_and_stop_payloads():
    jobs = merged(V22, "squeue_running.json")
    topo = parse_nodes(load(V22 / "sinfo.json"))
    c = cfg()
    a = jobs[IDS["array_tasks"][1]]
    p = start_payload(a, c, topo)
    assert p["jobId"] == a.job_id and p["arrayJobId"] == IDS["array"] and p["cluster"] == "ccslurm"
    assert p["user"] == "root" and p["project"] == "proj1" and p["numNodes"] == 1 and p["numHwthreads"] == 2
    assert p["shared"] == "multi_user" and "walltime" not in p and "numAcc" not in p
    assert p["metaData"]["jobName"] == "arr" and p["startTime"] == a.start_time and p["jobState"] == "running"
    assert "accelerators" not in p["resources"][0]
    f = jobs[IDS["failing"]]
    s = stop_payload(f)
    assert s == {"jobId": f.job_id, "cluster": "ccslurm", "jobState": "failed", "startTime": f.start_time,
                 "stopTime": f.end_time}
    assert stop_payload(jobs[IDS["timeout"]])["jobState"] == "timeout"
    assert stop_payload(jobs[IDS["cancel_running"]])["jobState"] == "cancelled"


def test_job_name_comes_from_slurmctld_not_from_the_placeholder_of_slurmdbd():
    # slurmdbd shows 'allocation' until it has the job's name, sometimes even for a finished job
    doc = load(V22 / "sacct.json")
    (rec,) = [j for j in doc["jobs"] if j["job_id"] == IDS["simple"]]
    rec["name"] = "allocation"
    jobs = {j.job_id: j for j in parse_sacct(doc)}
    assert jobs[IDS["simple"]].name == "allocation"
    for sq in parse_squeue(load(V22 / "squeue.json")):
        if sq.job_id in jobs:
            jobs[sq.job_id].merge_controller(sq)
    assert start_payload(jobs[IDS["simple"]], cfg(), {})["metaData"]["jobName"] == "simple"


def test_2205_finished_squeue_jobs_keep_allocation_but_lose_gres():
    sq = {j.job_id: j for j in parse_squeue(load(V22 / "squeue.json"))}
    j = sq[IDS["multinode_gpu"]]
    assert j.state == "COMPLETED" and [a.hostname for a in j.alloc] == ["node01", "node02"]
    assert all(a.gpus == [] for a in j.alloc)


# -- 24.11, shape of upstream's structs --------------------------------------------------------

def test_2411_sacct_fields():
    jobs = {j.job_id: j for j in parse_sacct(load(V24 / "sacct.json"))}
    t = jobs[5001]
    assert (t.cluster, t.user, t.account, t.state, t.time_limit_min) == ("hpc24", "alice", "chem", "COMPLETED", 120)
    assert t.nodes == ["gpu01", "gpu02"] and t.num_hwthreads == 16 and t.num_acc == 4
    assert jobs[5002].time_limit_min is None and jobs[5002].state == "RUNNING" and not is_finished(jobs[5002])
    assert jobs[5002].script.startswith("#!/bin/bash")
    assert never_ran(jobs[5003])
    assert jobs[5010].array_job_id == 5009 and jobs[5010].state == "TIMEOUT"
    assert jobs[5007].num_acc == 3  # typed GPUs only: h100 x2 + h200 x1
    assert [cc_state(jobs[i].state) for i in (5004, 5005, 5006)] == ["out_of_memory", "failed", "preempted"]


def test_2411_allocation_threads_gpus_sharing():
    jobs = merged(V24)
    topo = parse_nodes(load(V24 / "scontrol_nodes.json"))
    c = cfg(gpuPciAddrs={"^gpu0[12]$": ["0000:41:00.0", "0000:61:00.0", "0000:81:00.0", "0000:C1:00.0"]})
    t = jobs[5001]
    res = resources(t, c, topo)
    assert res[0]["hwthreads"] == list(range(8)) and res[1]["hwthreads"] == list(range(8))
    assert res[0]["accelerators"] == ["0000:41:00.0", "0000:61:00.0"]
    assert res[1]["accelerators"] == ["0000:81:00.0", "0000:C1:00.0"]
    p = start_payload(t, c, topo)
    assert p["shared"] == "none" and p["numAcc"] == 4 and p["walltime"] == 7200 and p["numNodes"] == 2
    s = jobs[5002]
    (r,) = resources(s, c, topo)
    # 4 cores per socket (all listed), 2 threads per core (job_resources.threads_per_core)
    assert r["hwthreads"] == [2, 3, 14, 15]
    p = start_payload(s, c, topo)
    assert p["shared"] == "single_user" and "walltime" not in p and p["metaData"]["jobScript"].startswith("#!")
    sq = {j.job_id: j for j in parse_squeue(load(V24 / "squeue.json"))}
    assert sq[5011].state == "PENDING" and sq[5011].alloc is None and never_ran(sq[5011])


def test_threads_per_core_from_topology_when_job_does_not_say():
    jobs = merged(V24)
    topo = parse_nodes(load(V24 / "scontrol_nodes.json"))
    s = jobs[5002]
    s.threads_per_core = None
    (r,) = resources(s, cfg(), topo)
    assert r["hwthreads"] == [2, 3, 14, 15]  # cpu001 has 2 threads per core
    (r,) = resources(s, cfg(), {})
    assert r["hwthreads"] == [1, 7]  # unknown: one thread per core, the core index (as cc-slurm-adapter)


def test_without_controller_data_only_hostnames():
    jobs = {j.job_id: j for j in parse_sacct(load(V24 / "sacct.json"))}
    assert resources(jobs[5001], cfg(), {}) == [{"hostname": "gpu01"}, {"hostname": "gpu02"}]


def test_gpu_without_pci_mapping_has_no_accelerators(caplog):
    jobs = merged(V24)
    res = resources(jobs[5001], cfg(), parse_nodes(load(V24 / "scontrol_nodes.json")))
    assert all("accelerators" not in r for r in res)
    assert "gpuPciAddrs" in caplog.text


def test_ignore_hosts_only_when_all_hosts_match():
    from cc.adapter.mapping import ignored_by_hosts

    jobs = merged(V24)
    assert ignored_by_hosts(jobs[5001], cfg(ignoreHosts="^gpu0[12]$"))
    assert not ignored_by_hosts(jobs[5001], cfg(ignoreHosts="^gpu01$"))
    assert not ignored_by_hosts(jobs[5001], cfg())


def test_state_mapping():
    assert cc_state("COMPLETED") == "completed" and cc_state("CANCELLED by 0") == "cancelled"
    assert cc_state("NODE_FAIL") == "failed" and cc_state("BOOT_FAIL") == "boot_fail"
    assert cc_state("DEADLINE") == "deadline" and cc_state("TIMEOUT") == "timeout"
    assert cc_state("WEIRD") == "failed"


def test_slurm_info_is_text_with_job_id():
    text = (V22 / "scontrol_show_job.txt").read_text()
    assert re.search(rf"JobId={IDS['simple']}\b", text)
    assert (V22 / "batch_script.txt").read_text().startswith("#!/bin/sh")
