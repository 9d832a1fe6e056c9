"""cc-supervise report: figures of jobs with known metric values (archived and running, with and without GPUs),
plain, terminal and JSON output, and the --user table."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import orjson
import pytest

from cc.archive import JobArchive, job_meta
from cc.clusters import parse_cluster
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, Tag, connect, migrate, transaction
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.report._figures import figures
from supervisor._init import init_directory
from tests.helpers import ROOT, running

GPU0, GPU1 = "00000000:01:00.0", "00000000:02:00.0"


def cluster_doc(gpus: bool) -> dict:
    def metric(n, scope, agg, base="", prefix=None, **kw):
        unit = {"base": base, **({"prefix": prefix} if prefix else {})}
        return {"name": n, "unit": unit, "scope": scope, "timestep": 10, "aggregation": agg, "peak": 100,
                "normal": 50, "caution": 20, "alert": 10, **kw}

    metrics = [metric("cpu_load", "node", "avg", peak=8), metric("mem_used", "node", None, "B", "G", peak=64),
               metric("flops_any", "hwthread", "sum", "F/s", "G"), metric("mem_bw", "socket", "sum", "B/s", "G"),
               metric("cpu_power", "socket", "sum", "W", energy="power")]
    topo = {"node": list(range(8)), "socket": [[0, 1, 2, 3], [4, 5, 6, 7]],
            "memoryDomain": [[0, 1, 2, 3], [4, 5, 6, 7]], "core": [[0, 1], [2, 3], [4, 5], [6, 7]]}
    if gpus:
        metrics += [metric("acc_utilization", "accelerator", "avg"),
                    metric("acc_mem_used", "accelerator", "sum", "B", "G", peak=16),
                    metric("acc_power", "accelerator", "sum", "W", energy="power")]
        topo["accelerators"] = [{"id": GPU0, "type": "Nvidia GPU", "model": "T"},
                                {"id": GPU1, "type": "Nvidia GPU", "model": "T"}]
    return {"name": "c1", "metricConfig": metrics, "subClusters": [{
        "name": "main", "nodes": "*", "processorType": "Test CPU", "socketsPerNode": 2, "coresPerSocket": 2,
        "threadsPerCore": 2, "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10},
        "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 40},
        "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 100}, "topology": topo}]}


# Known values per node: n01 busy, n02 nearly idle.
LOAD = {"n01": 6.0, "n02": 0.4}          # of 8 hwthreads: 75% and 5%, overall 40%
MEM = {"n01": 8.0, "n02": 4.0}           # GB of 64: 12 of 128 GB = 9.4%
FLOPS_PER_HWT = 0.25                     # GF/s x 8 = 2 GF/s per node, 4 of 80 GF/s = 5%
BW_PER_SOCKET = 20.0                     # GB/s x 2 = 40 GB/s per node, 80 of 200 = 40%
CPU_POWER_PER_SOCKET = 50.0              # W x 2 sockets x 2 nodes = 200 W
GPU_UTIL = {GPU0: 20.0, GPU1: 40.0}      # avg 30%
GPU_MEM = 2.0                            # GB per GPU: 4 of 32 GB per node = 12.5%
GPU_POWER = 75.0                         # W per GPU: 300 W for 4 GPUs


def series(h, values, sid=None):
    data = [values] * 6
    s = {"hostname": h, "statistics": {"avg": values, "min": values, "max": values}, "data": data}
    if sid is not None:
        s["id"] = sid
    return s


def archived_data(gpus: bool) -> dict:
    hosts = ("n01", "n02")

    def scoped(scope, unit, entries):
        return {scope: {"unit": unit, "timestep": 10, "series": entries}}

    out = {
        "cpu_load": scoped("node", {"base": ""}, [series(h, LOAD[h]) for h in hosts]),
        "mem_used": scoped("node", {"base": "B", "prefix": "G"}, [series(h, MEM[h]) for h in hosts]),
        "flops_any": scoped("node", {"base": "F/s", "prefix": "G"}, [series(h, FLOPS_PER_HWT * 8) for h in hosts]),
        "mem_bw": scoped("socket", {"base": "B/s", "prefix": "G"},
                         [series(h, BW_PER_SOCKET, str(s)) for h in hosts for s in (0, 1)]),
        "cpu_power": scoped("node", {"base": "W"}, [series(h, 2 * CPU_POWER_PER_SOCKET) for h in hosts]),
    }
    if gpus:
        out["acc_utilization"] = scoped("accelerator", {"base": ""},
                                        [series(h, GPU_UTIL[g], g) for h in hosts for g in (GPU0, GPU1)])
        out["acc_mem_used"] = scoped("accelerator", {"base": "B", "prefix": "G"},
                                     [series(h, GPU_MEM, g) for h in hosts for g in (GPU0, GPU1)])
        out["acc_power"] = scoped("accelerator", {"base": "W"},
                                  [series(h, GPU_POWER, g) for h in hosts for g in (GPU0, GPU1)])
    return out


def make_installation(root, gpus: bool, emission: float | None = 400):
    init_directory(root, [], "127.0.0.1:0", "127.0.0.1:0", memory_cap_gb=0.2)
    cfg = orjson.loads((root / "config.json").read_bytes())
    cfg["metric-store"]["retention-in-memory"] = "1h"
    cfg["metric-store"]["ingest-workers"] = 1
    if emission:
        cfg["main"]["emission-constant"] = emission
    else:
        cfg["main"].pop("emission-constant", None)
    (root / "config.json").write_bytes(orjson.dumps(cfg))
    d = root / "var" / "job-archive" / "c1"
    d.mkdir(parents=True, exist_ok=True)
    (d / "cluster.json").write_bytes(orjson.dumps(cluster_doc(gpus)))


def archive_job(root, gpus: bool, job_id: int = 4242, duration: int = 3600, meta_data=None) -> None:
    archive = JobArchive(root / "var" / "job-archive")
    resources = [{"hostname": h, **({"accelerators": [GPU0, GPU1]} if gpus else {})} for h in ("n01", "n02")]
    job = Job(job_id=job_id, cluster="c1", subcluster="main", user="alice", project="p1",
              start_time=int(time.time()) - duration - 600, resources=resources, num_nodes=2, duration=duration,
              state="completed", num_hwthreads=16, num_acc=4 if gpus else 0, meta_data=meta_data or {},
              monitoring_status=MONITORING_ARCHIVING_SUCCESSFUL)
    job.tags = [Tag(0, "jobClass", "lowload"), Tag(0, "app", "gromacs")]
    archive.write(job_meta(job, {}), archived_data(gpus))
    migrate(root / "var" / "job.db")
    conn = connect(root / "var" / "job.db")
    try:
        db_id = transaction(conn, jobs.insert_job, job)
        for t in job.tags:
            transaction(conn, tags.add_tag, None, db_id, t.type, t.name, t.scope)
    finally:
        conn.close()


def cli(root, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "supervisor", "--config", str(root / "config.json"), "report",
                           *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def check_cpu_figures(rep):
    nodes = {n["hostname"]: n for n in rep["nodes"]}
    assert nodes["n01"]["cpu_util_pct"] == 75.0 and nodes["n02"]["cpu_util_pct"] == 5.0
    o = rep["overall"]
    assert o["cpu"]["util_pct"] == 40.0
    assert o["memory"]["used_bytes"] == pytest.approx(12e9) and o["memory"]["allocated_bytes"] == pytest.approx(128e9)
    assert o["memory"]["pct"] == 9.4
    assert o["flops"]["value"] == pytest.approx(4e9) and o["flops"]["peak"] == pytest.approx(80e9)
    assert o["flops"]["pct"] == 5.0
    assert o["mem_bw"]["value"] == pytest.approx(80e9) and o["mem_bw"]["pct"] == 40.0
    roof = o["roofline"]
    assert roof["bound"] == "memory" and roof["intensity"] == pytest.approx(0.05) and roof["ridge"] == pytest.approx(0.4)
    assert roof["pct_of_roof"] == 40.0 and "memory-bound" in roof["text"]
    text = " ".join(rep["advice"])
    assert "CPU utilisation is 40%" in text and "n02 was nearly idle" in text
    assert "used 9.4% of its memory" in text and "about 15 GB" in text


@pytest.mark.parametrize("gpus", [False, True])
def test_archived_job_figures_json(tmp_path, gpus):
    make_installation(tmp_path, gpus)
    archive_job(tmp_path, gpus, meta_data={"message": "few flops: check vectorisation"})
    r = cli(tmp_path, "4242", "--json")
    assert r.returncode == 0, r.stderr
    rep = orjson.loads(r.stdout)
    assert rep["source"] == "archive" and rep["job"]["jobId"] == 4242 and rep["job"]["duration"] == 3600
    check_cpu_figures(rep)
    e = rep["overall"]["energy"]
    kwh = 0.5 if gpus else 0.2  # (200 W [+ 300 W]) x 1 h
    assert e["kwh"] == pytest.approx(kwh) and e["co2_kg"] == pytest.approx(kwh * 0.4)
    assert "message: few flops: check vectorisation" in rep["hints"]
    if gpus:
        g = rep["overall"]["gpu"]
        assert g["count"] == 4 and g["util_pct"] == 30.0
        assert g["mem_used_bytes"] == pytest.approx(8e9) and g["mem_total_bytes"] == pytest.approx(64e9)
        assert g["mem_pct"] == 12.5
        assert "GPU utilisation is 30%" in " ".join(rep["advice"])
    else:
        assert rep["overall"]["gpu"] is None and "gpu_util_pct" not in rep["nodes"][0]


def test_archived_job_plain_and_terminal_output(tmp_path):
    make_installation(tmp_path, True)
    archive_job(tmp_path, True)
    plain = cli(tmp_path, "4242")
    assert plain.returncode == 0, plain.stderr
    out = plain.stdout
    assert "\x1b[" not in out  # piped: no escape sequences
    assert "CPU utilisation:" in out and "40%" in out
    assert "12.0 GB of 128.0 GB (9.4%)" in out
    assert "GPU utilisation (4 GPUs):" in out and "30%" in out
    assert "Energy: 0.5 kWh, 0.2 kg CO2 at 400 g/kWh" in out
    assert "memory-bound" in out and "Advice:" in out
    assert "n01" in out and "75%" in out
    tty = cli(tmp_path, "4242", "--color", "always")
    assert tty.returncode == 0, tty.stderr
    t = tty.stdout
    assert "\x1b[" in t and "━" in t  # rich bars, coloured
    assert "\x1b[31m" in t or "\x1b[31;" in t or "\x1b[1;31m" in t  # red: some value is poor
    assert "Per node" in t and "Job 4242 on c1/main" in t


def test_no_emission_constant_no_co2(tmp_path):
    make_installation(tmp_path, False, emission=None)
    archive_job(tmp_path, False)
    rep = orjson.loads(cli(tmp_path, "4242", "--json").stdout)
    assert rep["overall"]["energy"]["kwh"] == pytest.approx(0.2) and rep["overall"]["energy"]["co2_kg"] is None
    assert "main.emission-constant is not set" in cli(tmp_path, "4242").stdout


def test_errors_name_the_problem(tmp_path):
    make_installation(tmp_path, False)
    archive_job(tmp_path, False)
    r = cli(tmp_path, "999")
    assert r.returncode == 1 and "no job 999" in r.stderr
    r = cli(tmp_path, "--user", "alice", "--since", "7x")
    assert r.returncode == 1 and "--since" in r.stderr


def test_user_table(tmp_path):
    make_installation(tmp_path, False)
    archive_job(tmp_path, False, job_id=1)
    r = cli(tmp_path, "--user", "alice", "--since", "7d")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["jobId", "cluster", "state"]
    assert lines[1].split()[:3] == ["1", "c1", "completed"] and "40%" in lines[1]
    js = orjson.loads(cli(tmp_path, "--user", "alice", "--json").stdout)
    assert [j["job"]["jobId"] for j in js] == [1]
    assert "no jobs of bob" in cli(tmp_path, "--user", "bob").stdout
    # a job of a cluster without cluster.json is named, not silently dropped
    conn = connect(tmp_path / "var" / "job.db")
    try:
        transaction(conn, jobs.insert_job, Job(job_id=2, cluster="gone", user="alice", project="p", resources=[],
                                               start_time=int(time.time()) - 60, num_nodes=1))
    finally:
        conn.close()
    r = cli(tmp_path, "--user", "alice")
    assert r.returncode == 1 and "job 2: cluster 'gone' has no cluster.json" in r.stderr
    assert r.stdout.splitlines()[1].split()[0] == "1"


def test_figures_without_data_do_not_invent_values():
    cluster = parse_cluster(cluster_doc(False), "c1")
    job = Job(job_id=1, cluster="c1", subcluster="main", user="u", project="p", start_time=0,
              resources=[{"hostname": "n01"}], num_nodes=1, duration=60, state="completed")
    rep = figures(job, cluster, {})
    o = rep["overall"]
    assert o["cpu"]["util_pct"] is None and o["memory"]["used_bytes"] is None and o["roofline"] is None
    assert o["energy"]["kwh"] == 0 and rep["advice"] == []


def ingest_lines(hosts, gpus: bool, t0: int, t1: int) -> str:
    lines = []
    for t in range(t0, t1, 10):
        for h in hosts:
            lines.append(f"cpu_load,cluster=c1,hostname={h},type=node value={LOAD[h]} {t}")
            lines.append(f"mem_used,cluster=c1,hostname={h},type=node value={MEM[h]} {t}")
            for hw in range(8):
                lines.append(f"flops_any,cluster=c1,hostname={h},type=hwthread,type-id={hw} value={FLOPS_PER_HWT} {t}")
            for s in (0, 1):
                lines.append(f"mem_bw,cluster=c1,hostname={h},type=socket,type-id={s} value={BW_PER_SOCKET} {t}")
                lines.append(f"cpu_power,cluster=c1,hostname={h},type=socket,type-id={s} "
                             f"value={CPU_POWER_PER_SOCKET} {t}")
            if gpus:
                for g in (GPU0, GPU1):
                    lines.append(f"acc_utilization,cluster=c1,hostname={h},type=accelerator,type-id={g} "
                                 f"value={GPU_UTIL[g]} {t}")
                    lines.append(f"acc_mem_used,cluster=c1,hostname={h},type=accelerator,type-id={g} "
                                 f"value={GPU_MEM} {t}")
                    lines.append(f"acc_power,cluster=c1,hostname={h},type=accelerator,type-id={g} "
                                 f"value={GPU_POWER} {t}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("gpus", [False, True])
def test_running_job_from_the_metric_store(tmp_path, gpus):
    root = tmp_path / "inst"
    with running(root, ingest_workers=1, clusters={"c1": cluster_doc(gpus)},
                 extra_config={"main": {"emission-constant": 400}}) as inst:
        now = int(time.time())
        start = now - 300
        hosts = ("n01", "n02")
        r = inst.write(ingest_lines(hosts, gpus, start, now))
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        doc = {"jobId": 77, "user": "alice", "project": "p1", "cluster": "c1", "subCluster": "main",
               "partition": "main", "numNodes": 2, "numHwthreads": 16, "startTime": start, "walltime": 86400,
               "resources": [{"hostname": h, **({"accelerators": [GPU0, GPU1]} if gpus else {})} for h in hosts],
               **({"numAcc": 4} if gpus else {})}
        r = httpx.post(inst.web + "/api/jobs/start_job/", content=orjson.dumps(doc), timeout=30,
                                     headers={"Authorization": f"Bearer {inst.token()}"})
        assert r.status_code == 201, r.text
        r = inst.cli("report", "77", "--json")
        assert r.returncode == 0, r.stderr + r.stdout
        rep = orjson.loads(r.stdout)
        assert rep["source"] == "metric store" and rep["job"]["state"] == "running"
        check_cpu_figures(rep)
        duration = rep["job"]["duration"]
        assert duration >= 300
        watts = 200 + (300 if gpus else 0)
        assert rep["overall"]["energy"]["kwh"] == pytest.approx(watts * duration / 3.6e6, abs=1e-3)
        if gpus:
            g = rep["overall"]["gpu"]
            assert g["util_pct"] == 30.0 and g["mem_pct"] == 12.5
        plain = inst.cli("report", "77")
        assert plain.returncode == 0 and "data from the metric store" in plain.stdout
    # the installation is gone: a running job's report says how to get its data
    r = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(root / "config.json"), "report", "77"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "error:" in r.stderr


def test_requested_memory_is_the_allocation():
    cluster = parse_cluster(cluster_doc(False), "c1")
    job = Job(job_id=1, cluster="c1", subcluster="main", user="u", project="p", start_time=0,
              resources=[{"hostname": "n01", "hwthreads": [0, 1, 2, 3]}], num_nodes=1, duration=60,
              state="completed", requested_memory=16384)  # MB (Slurm's MiB): 16 GiB
    rep = figures(job, cluster, archived_data(False))
    mem = rep["overall"]["memory"]
    assert mem["allocated_bytes"] == 16384 * 1024 * 1024 and mem["used_bytes"] == pytest.approx(8e9)
    assert mem["pct"] == round(100 * 8e9 / (16384 * 1024 * 1024), 1)
    # half the node's hardware threads: CPU load 6 of 4 threads, peaks halved
    assert rep["nodes"][0]["cpu_util_pct"] == 150.0 and rep["overall"]["flops"]["peak"] == pytest.approx(20e9)
    job.requested_memory = 0  # no request: the job's share of the node memory (64 GB / 2)
    assert figures(job, cluster, archived_data(False))["overall"]["memory"]["allocated_bytes"] == pytest.approx(32e9)
