"""Job tagger: app tags from job scripts, job classes from archived statistics, apply-tags, /config/taggers/."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from cc.archive import JobArchive, job_meta
from cc.clusters import parse_cluster
from cc.db import Job, connect, migrate, transaction
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.tagger import SHIPPED, Taggers, apply_all, load_rules, strip_comments
from cc.tagger._expr import EvalError, ExprError, compile_expr
from tests.archive_gen import init_archive, write_meta
from tests.helpers import Installation, running, small_cluster, wait_for

HEADER = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=04:00:00\n#SBATCH --job-name=run\nmodule purge\n"
SCRIPTS = {
    "gromacs": "module load gromacs/2023.3\nsrun gmx_mpi mdrun -deffnm md -ntomp $SLURM_CPUS_PER_TASK\n",
    "vasp": "module load intel vasp/6.4.2\nsrun vasp_std > vasp.out\n",
    "lammps": "module load openmpi\nsrun lmp_mpi -in in.melt -log log.melt\n",
    "openfoam": "source /opt/OpenFOAM-11/etc/bashrc\nblockMesh\ndecomposePar\nsrun simpleFoam -parallel\n",
    "cp2k": "module load cp2k/2024.1\nsrun cp2k.psmp -i h2o.inp -o h2o.out\n",
    "julia": "export JULIA_NUM_THREADS=16\nsrun julia --project=. simulate.jl\n",
    "python": "module load python/3.11\nsource $HOME/venv/bin/activate\nsrun python3 -u train.py --epochs 10\n",
    "matlab": "module load matlab/R2023b\nmatlab -nodisplay -batch \"run('analysis.m')\"\n",
    "orca": "module load orca/5.0.4\n$ORCA_ROOT/orca benzene.inp > benzene.out\n",
    "namd": "module load namd/3.0\ncharmrun +p64 namd3 apoa1.namd > apoa1.log\n",
    "qe": "module load quantum-espresso/7.2\nsrun pw.x -nk 4 -in scf.in > scf.out\n",
    "wrf": "cd $WORK/wrf/run\nsrun ./real.exe\nsrun ./wrf.exe\n",
    "turbomole": "export TURBODIR=/opt/TURBOMOLE\nsource $TURBODIR/Config_turbo_env\njobex -ri -c 200 > jobex.out\n",
    "gaussian": "module load g16\ng16 < water.com > water.log\n",
    "amber": "module load amber/22\nsrun pmemd.cuda -O -i md.in -p sys.prmtop -c sys.rst7 -o md.out\n",
    "cpmd": "srun cpmd.x si8.inp /scratch/pp > si8.out\n",
    "starccm": "starccm+ -batch run.java -np 128 -machinefile hosts model.sim\n",
    "ansys": "module load ansys/2023R2\nfluent 3ddp -g -t128 -i run.jou\n",
    "nwchem": "srun nwchem h2o.nw > h2o.out\n",
    "abinit": "srun abinit tbase1_1.abi > log 2> err\n",
    "siesta": "srun siesta < h2o.fdf > h2o.out\n",
}


@pytest.fixture(scope="module")
def taggers() -> Taggers:
    return Taggers(None)


def test_every_shipped_app_is_tagged_from_a_realistic_script(taggers):
    shipped = sorted(p.stem for p in (SHIPPED / "apps").glob("*.txt"))
    assert shipped == sorted(SCRIPTS), "every shipped app needs a test script"
    for app, body in SCRIPTS.items():
        assert taggers.apps_of(HEADER + body) == [app], app


def test_a_mention_in_a_comment_is_no_app(taggers):
    script = ("#!/bin/bash\n#SBATCH --job-name=vasp_relax\n# adapted from the GROMACS tutorial, see lammps docs\n"
              "   # julia version later\nsrun ./a.out   # faster than matlab\n")
    assert taggers.apps_of(script) == []
    assert strip_comments("a # b\n  # c\nd") == "a\n\nd"
    assert taggers.apps_of("module load python/3.11\nsrun ./a.out\n") == []  # a loaded module alone is no use
    assert taggers.apps_of(HEADER + SCRIPTS["python"] + SCRIPTS["lammps"]) == ["lammps", "python"]


# -- job classes ----------------------------------------------------------------------------

def cluster_doc() -> dict:
    doc = small_cluster("c1")
    doc["metricConfig"].append({"name": "acc_utilization", "unit": {"base": ""}, "scope": "accelerator",
                                "timestep": 10, "aggregation": "avg", "peak": 100, "normal": 50, "caution": 20,
                                "alert": 10})
    return doc  # every metric: peak 100, normal 50, caution 20, alert 10


def stats(**over) -> dict:
    """Statistics that trigger no shipped class; ``metric=(avg, min, max)`` overrides."""
    base = {"cpu_load": (80, 70, 90), "flops_any": (50, 40, 60), "mem_bw": (50, 40, 60), "mem_used": (40, 30, 50),
            "acc_utilization": (60, 50, 70)}
    base.update(over)
    return {m: {"unit": {"base": ""}, "avg": a, "min": lo, "max": hi} for m, (a, lo, hi) in base.items()}


def job(i: int, **kw) -> Job:
    d = dict(job_id=100 + i, cluster="c1", subcluster="main", user="u", project="p", start_time=1_700_000_000 + i,
             resources=[{"hostname": "n1"}], num_nodes=1, duration=3600, state="completed", num_hwthreads=8,
             shared="none", monitoring_status=3)
    d.update(kw)
    return Job(**d)


CASES = [  # (name, job overrides, statistics, expected job classes)
    ("neutral", {}, stats(), set()),
    ("excessive", {}, stats(cpu_load=(130, 120, 140)), {"excessiveload"}),
    ("excessive-but-shared", {"shared": "single_user"}, stats(cpu_load=(130, 120, 140)), set()),
    ("excessive-but-short", {"duration": 300}, stats(cpu_load=(130, 120, 140)), set()),
    ("lowload", {}, stats(cpu_load=(20, 10, 30)), {"lowload"}),
    ("lowutilization", {}, stats(flops_any=(5, 1, 8), mem_bw=(4, 1, 8)), {"lowutilization"}),
    ("flops-low-only", {}, stats(flops_any=(5, 1, 8)), set()),
    ("memorybound", {}, stats(mem_bw=(90, 80, 95)), {"memorybound"}),
    ("highmemory", {}, stats(mem_used=(60, 50, 95)), {"highmemory"}),
    ("lowgpuload", {"num_acc": 2}, stats(acc_utilization=(10, 0, 30)), {"lowgpuload"}),
    ("gpu-idle-but-no-gpu", {"num_acc": 0}, stats(acc_utilization=(10, 0, 30)), set()),
    ("no-statistics-of-a-metric", {}, {"cpu_load": {"avg": 130, "min": 1, "max": 2}}, {"excessiveload"}),
]


def test_shipped_job_classes_fire_exactly_on_their_jobs(taggers):
    cluster = parse_cluster(cluster_doc(), "c1")
    shipped = {p.stem for p in (SHIPPED / "jobclasses").glob("*.json")} - {"parameters"}
    fired = set()
    for i, (name, over, st, want) in enumerate(CASES):
        got = dict(taggers.classify(job(i, **over), st, cluster))
        assert set(got) == want, name
        fired |= set(got)
    assert fired == {jc.tag for jc in taggers.rules.classes} and len(shipped) == len(taggers.rules.classes)
    hint = dict(taggers.classify(job(0), stats(cpu_load=(130.456, 1, 2)), cluster))["excessiveload"]
    assert "130.46" in hint and "110" in hint and "{{" not in hint


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    (tmp_path / "apps").mkdir()
    (tmp_path / "jobclasses").mkdir()
    return tmp_path


def test_a_broken_rule_file_is_named_and_the_rest_still_work(site):
    (site / "apps" / "bad.txt").write_text("ok\nfoo(\n")
    (site / "jobclasses" / "syntax.json").write_text('{"name": "x", "tag": "x", "rule": "cpu_load.avg >"}')
    (site / "jobclasses" / "unknown.json").write_text(orjson.dumps(
        {"name": "y", "tag": "y", "metrics": ["cpu_load"], "variables": [{"name": "v", "expr": "mem_bw.avg * 2"}],
         "rule": "v > 1"}).decode())
    (site / "jobclasses" / "param.json").write_text('{"name": "z", "tag": "z", "parameters": ["nope"], "rule": "true"}')
    (site / "jobclasses" / "hint.json").write_text('{"name": "h", "tag": "h", "rule": "true", "hint": "{{.who}}"}')
    (site / "jobclasses" / "json.json").write_text("{nope")
    rs = load_rules(site)
    errs = "\n".join(rs.errors)
    assert f"{site}/apps/bad.txt: line 2: invalid regular expression 'foo('" in errs
    assert f"{site}/jobclasses/syntax.json: rule: column" in errs
    assert f"{site}/jobclasses/unknown.json: variables[0]: expr: unknown name 'mem_bw.avg'" in errs
    assert f"{site}/jobclasses/param.json: parameters: 'nope' is not defined" in errs
    assert f"{site}/jobclasses/hint.json: hint: '{{{{.who}}}}': unknown name 'who'" in errs
    assert f"{site}/jobclasses/json.json: invalid JSON" in errs
    assert len(rs.errors) == 6 and len(rs.apps) == 21 and len(rs.classes) == 6


def test_site_rules_add_replace_and_reload_on_change(site):
    t = Taggers(site)
    assert t.apps_of("srun ./mycode.x") == []
    (site / "apps" / "mycode.txt").write_text("# our in-house code\n\\bmycode\\.x\\b\n")
    t.refresh(force=True)
    assert t.apps_of("srun ./mycode.x") == ["mycode"]
    (site / "apps" / "julia.txt").write_text("\\bjulia-site\\b\n")  # replaces the shipped julia.txt
    (site / "jobclasses" / "parameters.json").write_text('{"excessive_load_factor": 2.0}')
    t.refresh(force=True)
    assert t.apps_of("julia x.jl") == [] and t.apps_of("julia-site x.jl") == ["julia"]
    cluster = parse_cluster(cluster_doc(), "c1")
    assert dict(t.classify(job(0), stats(cpu_load=(130, 1, 2)), cluster)) == {}  # 130 < 2 x 100 now


def test_expressions():
    env = {"a": {"b": 3.0}, "x": 2, "s": "none"}
    assert compile_expr("a.b * x + 1 > 6 && s == \"none\" and not (x < 1)")(env) is True
    assert compile_expr("10 % 4 + max(1, a.b) - abs(-2)")(env) == 3.0
    assert compile_expr("x / 0 > 1000")(env) is True and compile_expr("0 / 0 < 1")(env) is False
    assert compile_expr("a.b").names == {"a.b"}
    for bad in ("a +", "(1", "foo(1)", "a..b", "1 @ 2", "", "(" * 100 + "1" + ")" * 100):
        with pytest.raises(ExprError):
            compile_expr(bad)
    with pytest.raises(EvalError, match="needs numbers"):
        compile_expr("s + 1")(env)
    with pytest.raises(EvalError, match="has no value"):
        compile_expr("a.c > 1")(env)


def test_the_config_key_is_checked(tmp_path):
    from cc import tagger
    from cc.config import ConfigError

    with pytest.raises(ConfigError, match="main.enable-job-taggers must be true or false"):
        Installation(tmp_path / "bad", extra_config={"main": {"enable-job-taggers": "yes"}})
    assert tagger.for_config(Installation(tmp_path / "off").cfg) is None
    on = Installation(tmp_path / "on", extra_config={"main": {"enable-job-taggers": True}}).cfg
    assert tagger.for_config(on).site_dir == on.var_dir / "tagger"


# -- apply-tags over an archive built here -----------------------------------------------------

def build(inst: Installation) -> dict[int, set[str]]:
    """Archived jobs with known statistics (and scripts) in the database and archive; expected tags by id."""
    root = inst.cfg.archive_path
    init_archive(root, {"c1": cluster_doc()})
    migrate(inst.cfg.db_path)
    conn = connect(inst.cfg.db_path)
    want = {}
    try:
        for i, (_, over, st, classes) in enumerate(CASES):
            j = job(i, **over)
            app = sorted(SCRIPTS)[i % len(SCRIPTS)]
            j.meta_data = {"jobScript": HEADER + SCRIPTS[app]}
            write_meta(root, job_meta(j, st))
            db_id = transaction(conn, jobs.insert_job, j)
            want[db_id] = {f"app:{app}"} | {f"jobClass:{c}" for c in classes}
    finally:
        conn.close()
    return want


def tag_state(db_path) -> tuple[dict[int, set[str]], int, dict[int, str]]:
    conn = connect(db_path)
    try:
        rows = conn.execute("SELECT jobtag.job_id, tag_type || ':' || tag_name FROM jobtag JOIN tag "
                            "ON tag.id = jobtag.tag_id").fetchall()
        by: dict[int, set[str]] = {}
        for jid, t in rows:
            by.setdefault(jid, set()).add(t)
        msgs = {j.id: j.meta_data.get("message") for j in map(Job.from_row, conn.execute(
            "SELECT " + ", ".join("job." + c for c in jobs.JOB_COLUMNS) + " FROM job"))}
        return by, len(rows), msgs
    finally:
        conn.close()


def test_apply_tags_cli_tags_every_job_and_is_idempotent(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1)
    want = build(inst)
    r = inst.cli("apply-tags")
    assert r.returncode == 0, r.stderr
    assert f"{len(CASES)} jobs tagged" in r.stdout and "jobs/s" in r.stdout
    first = tag_state(inst.cfg.db_path)
    assert first[0] == {k: v for k, v in want.items() if v}
    assert first[2][1] is None and "average load per node is 130" in first[2][2]
    r = inst.cli("apply-tags")
    assert r.returncode == 0, r.stderr
    assert tag_state(inst.cfg.db_path) == first
    conn = connect(inst.cfg.db_path)
    try:  # in-process run gives the same result too
        res = apply_all(conn, Taggers(None), JobArchive(inst.cfg.archive_path), {"c1": parse_cluster(cluster_doc(), "c1")})
    finally:
        conn.close()
    assert res.jobs == len(CASES) and not res.errors
    assert tag_state(inst.cfg.db_path) == first


# -- a running installation: tags on start and stop, the routes and their roles ---------------


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("tagger"), ingest_workers=1,
                 extra_config={"main": {"enable-job-taggers": True}}) as i:
        for spec in ("boss:admin:pw-boss", "alice:user:pw-alice", "sup:support:pw-sup"):
            assert i.cli("add-user", spec).returncode == 0
        yield i


def job_tags_of(inst, db_id: int) -> set[str]:
    conn = connect(inst.cfg.db_path)
    try:
        return {f"{t.type}:{t.name}" for t in tags.job_tags(conn, db_id, None)}
    finally:
        conn.close()


def test_tags_on_job_start_and_job_classes_on_archiving(inst):
    auth = {"Authorization": f"Bearer {inst.token()}"}
    t0 = (int(time.time()) // 10) * 10 - 720
    lines = [f"cpu_load,cluster=c1,hostname=t1,type=node value=150 {t0 + 10 * k}" for k in range(72)]
    assert inst.write("\n".join(lines)).status_code == 200
    start = {"jobId": 7001, "user": "alice", "project": "p1", "cluster": "c1", "subCluster": "main", "startTime": t0,
             "numNodes": 1, "walltime": 3600, "resources": [{"hostname": "t1"}], "exclusive": 1,
             "metaData": {"jobScript": HEADER + SCRIPTS["gromacs"]}}
    r = httpx.post(inst.web + "/api/jobs/start_job/", content=orjson.dumps(start), headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    db_id = r.json()["id"]
    assert job_tags_of(inst, db_id) == {"app:gromacs"}  # in the same transaction as the start
    r = httpx.post(inst.web + "/api/jobs/stop_job/", headers=auth, timeout=30, content=orjson.dumps(
        {"jobId": 7001, "cluster": "c1", "startTime": t0, "stopTime": t0 + 710, "jobState": "completed"}))
    assert r.status_code == 200, r.text
    wait_for(lambda: "jobClass:excessiveload" in job_tags_of(inst, db_id), what="job class tag")
    conn = connect(inst.cfg.db_path)
    try:
        meta = jobs.find_job(conn, db_id).meta_data
    finally:
        conn.close()
    assert "average load per node is 150" in meta["message"]
    assert "jobClass:lowload" not in job_tags_of(inst, db_id)


def session(inst, user: str) -> httpx.Client:
    c = httpx.Client(base_url=inst.web, timeout=30, headers={"Origin": inst.web})
    r = c.post("/login", json={"username": user, "password": f"pw-{user}"})
    assert r.status_code == 200, r.text
    return c


def test_tagger_routes_and_roles(inst):
    for user in ("alice", "sup"):
        c = session(inst, user)
        assert c.get("/config/taggers/").status_code == 403
        assert c.post("/config/taggers/run/", data={"name": "AppTagger"}).status_code == 403
        c.close()
    assert httpx.get(inst.web + "/config/taggers/", timeout=30).status_code == 401
    c = session(inst, "boss")
    r = c.get("/config/taggers/")
    assert r.status_code == 200, r.text
    listed = {t["name"]: t for t in r.json()}
    assert listed["AppTagger"]["type"] == "start" and listed["JobClassTagger"]["type"] == "stop"
    assert listed["AppTagger"]["rules"] == 21 and listed["JobClassTagger"]["rules"] == 6
    assert c.post("/config/taggers/run/", data={}).status_code == 400
    assert c.post("/config/taggers/run/", data={"name": "Nope"}).status_code == 409
    conn = connect(inst.cfg.db_path)
    try:  # a job the start hook never saw (inserted behind the web process's back)
        untagged = transaction(conn, jobs.insert_job, job(900, meta_data={"jobScript": HEADER + SCRIPTS["vasp"]},
                                                          monitoring_status=1))
    finally:
        conn.close()
    r = c.post("/config/taggers/run/", data={"name": "AppTagger"})
    assert r.status_code == 200 and r.text == "Tagger AppTagger started"

    def finished():
        t = {t["name"]: t for t in c.get("/config/taggers/").json()}["AppTagger"]
        return not t["running"] and t["lastRun"]
    last = wait_for(finished, what="tagger run")
    assert last["jobs"] >= 1 and last["errors"] == []
    assert job_tags_of(inst, untagged) == {"app:vasp"}
    c.close()


def test_settings_card_runs_a_tagger_and_the_job_view_shows_hints(inst, tmp_path):
    from tests.ui_helpers import Browser, browser_available, login

    missing = browser_available()
    if missing:
        pytest.skip(missing)
    conn = connect(inst.cfg.db_path)
    try:  # a job with a hint of its own (the archiver's is tested above)
        hinted = transaction(conn, jobs.insert_job, job(901, meta_data={"message": "Low CPU load: 12.5 of 64"},
                                                        monitoring_status=1, state="running"))
    finally:
        conn.close()
    b = Browser(tmp_path)
    try:
        login(b, inst.web, "boss", "pw-boss", "/config")
        b.get(inst.web + "/config")
        b.wait("return document.querySelector('[data-run-tagger=\"JobClassTagger\"]') !== null", what="taggers card")
        assert "JobClassTagger" in b.text("[data-taggers-card]")
        b.click("[data-run-tagger=\"JobClassTagger\"]")
        b.wait("return document.querySelector('[data-admin-status=\"taggers\"]').dataset.result === 'ok'",
               what="run answer")
        assert b.text("[data-admin-status=\"taggers\"]") == "Tagger JobClassTagger started"
        b.wait("return document.querySelector('[data-tagger=\"JobClassTagger\"] [data-tagger-state=\"idle\"]') "
               "!== null && !document.querySelector('[data-tagger=\"JobClassTagger\"]').textContent"
               ".includes('never run')", timeout=90, what="run finished")
        b.get(inst.web + f"/monitoring/job/{hinted}")
        b.wait("return document.querySelector('[data-job-hints]') !== null", timeout=60, what="hints")
        assert b.text("[data-job-hints]") == "Low CPU load: 12.5 of 64"
        errors = b.console_errors()
        assert not errors, errors
    finally:
        b.quit()
