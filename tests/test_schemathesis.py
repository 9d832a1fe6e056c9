"""schemathesis against the real installation: every operation of schemas/openapi.yaml, all checks.

0 server errors, 0 responses outside their documented status code, content type or
schema, no schema-violating request accepted and no schema-valid one refused (except the
listed statuses for what a schema cannot say: an unknown cluster, a job that is not
running ...), and none of schemathesis' "the API rejects most valid data" warnings.

The run is deterministic (``generation.deterministic``) and bounded: a few examples per
operation, about 90 s on 2 cores.  ``make fuzz-api`` runs many more (``CC_FUZZ_API_EXAMPLES``),
randomly from a seed it prints (``CC_FUZZ_API_SEED``; the same seed repeats a run).
The installation's own names (cluster, hosts, jobs, users, metrics) are given to
schemathesis as dictionaries, so that generated requests also reach the accepting paths.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.helpers import running

EXAMPLES = int(os.environ.get("CC_FUZZ_API_EXAMPLES", "12"))
STATEFUL_STEPS = int(os.environ.get("CC_FUZZ_API_STEPS", "6"))
SEED = os.environ.get("CC_FUZZ_API_SEED")  # set (make fuzz-api): random generation from that seed
JOB_IDS = list(range(4100, 4116))
HOSTS = [f"n{i:02d}" for i in range(1, 17)]
USERS = ["alice", "bob", "mgr"]
METRICS = ["cpu_load", "flops_any", "mem_bw", "mem_used"]
STARTED = int(time.time()) - 1800  # every seeded job's start

# Statuses a schema-valid request may get for what no schema says (beside schemathesis' defaults).
DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
SEMANTIC = {
    "/api/jobs/start_job/": [400, 422],  # unknown cluster/subcluster, host in no subcluster or twice,
    #                                      numNodes != len(resources); 422: started within 24 h
    "/api/jobs/stop_job/": [400, 422],  # stopTime before the job's start; 422: not running
    "/api/jobs/{id}": [422],  # cc-backend answers 422 for a job that does not exist
    "/api/jobs/metrics/{id}": [422],
    "/userapi/jobs/{id}": [422],
    "/userapi/jobs/metrics/{id}": [422],
    "/api/user/{id}": [422],  # no such user, role already held / not held
    "/api/clusters/": [400],  # not a configured cluster (as cc-backend)
    "/api/nodestate/": [400],  # not a configured cluster
    "/api/healthcheck": [400],  # node-state form: not a configured cluster
    "/api/query": [400],  # from after to, or more points than a query may return
    "/api/write": [400],  # malformed line protocol (the valid lines are stored)
}


def _toml(value) -> str:
    return orjson.dumps(value).decode()


def config(base_url: str, token: str, report: Path, examples: int, steps: int) -> str:
    """A schemathesis.toml for this installation."""
    now = int(time.time())
    dictionaries = {"clusters": ["c1"], "hosts": HOSTS, "jobids": list(range(6000, 6040)),
                    "jobids2": list(range(7000, 7040)), "running": JOB_IDS[:8], "running2": JOB_IDS[8:],
                    "users": USERS, "metrics": METRICS, "times": [now - 3600, now],
                    "times2": [now - d * 86400 for d in range(2, 40, 2)], "started": [STARTED], "roles": ["support", "manager"]}
    bindings = {
        "body.cluster": "clusters", "query.cluster": "clusters", "body.jobId": "jobids",
        "body.resources[*].hostname": "hosts", "body.nodes[*].hostname": "hosts", "body.nodes[*]": "hosts",
        "body.metric-names[*]": "metrics",
        "body.queries[*].metric": "metrics", "body.queries[*].host": "hosts", "body.stopTime": "times",
        "body.from": "times", "body.to": "times", "body.username": "users",
    }
    lines = [
        f"base-url = {_toml(base_url)}",
        *([f"seed = {int(SEED)}"] if SEED else []),
        "max-redirects = 0",
        "request-timeout = 30",
        "workers = 1",
        f"headers = {{ Authorization = {_toml('Bearer ' + token)} }}",
        "[generation]",
        f"deterministic = {'false' if SEED else 'true'}",
        f"max-examples = {examples}",
        "database = \"none\"",
        "[phases.stateful]",
        f"max-steps = {steps}",
        "[checks]",
        "enabled = true",
        "[warnings]",
        "enabled = true",
        "[reports.json]",
        f"path = {_toml(str(report))}",
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(values)}"]
    lines.append("[parameters]")
    lines += [f"{_toml(k)} = {{ dictionary = {_toml(v)}, probability = 0.6 }}" for k, v in bindings.items()]
    for path, extra in SEMANTIC.items():
        lines += ["[[operations]]", f"include-path = {_toml(path)}",
                  f"checks.positive_data_acceptance.expected-statuses = {_toml(DEFAULT_ACCEPTED + extra)}"]
    # aliases draw other jobs than their primary method: deterministic generation sends both the same data
    def bind(name: str, **params: str) -> None:
        pairs = ", ".join(f'"{k}" = {{ dictionary = "{v}", probability = 0.9 }}' for k, v in params.items())
        lines.extend(["[[operations]]", f"include-name = {_toml(name)}", f"parameters = {{ {pairs} }}"])

    bind("POST /api/jobs/start_job/", **{"body.jobId": "jobids", "body.startTime": "times"})
    bind("PUT /api/jobs/start_job/", **{"body.jobId": "jobids2", "body.startTime": "times2"})
    for method, jobs in (("POST", "running"), ("PUT", "running2")):
        bind(f"{method} /api/jobs/stop_job/", **{"body.jobId": jobs, "body.startTime": "started",
                                                 "body.cluster": "clusters", "body.stopTime": "times"})
    # A job stops once: the coverage phase of POST stops what that of its alias PUT would (same handler).
    lines += ["[[operations]]", 'include-name = "PUT /api/jobs/stop_job/"', "phases.coverage.enabled = false"]
    lines += ["[[operations]]", 'include-name = "POST /api/user/{id}"',
              "parameters = { \"path.id\" = { dictionary = \"users\", probability = 0.6 }, "
              "\"body.add-role\" = { dictionary = \"roles\", probability = 0.6 } }"]
    return "\n".join(lines) + "\n"


def seed(inst) -> None:
    """Users, running jobs (some with metric data), a finished job, node states."""
    for name, roles in (("alice", "user"), ("bob", "user"), ("mgr", "manager")):
        assert inst.cli("add-user", f"{name}:{roles}:pw-{name}").returncode == 0
    h = {"Authorization": f"Bearer {inst.token()}"}
    now = int(time.time())
    lines = []
    for i, job_id in enumerate(JOB_IDS):
        host = HOSTS[i]
        r = httpx.post(inst.web + "/api/jobs/start_job/", headers=h, timeout=30, content=orjson.dumps({
            "jobId": job_id, "user": USERS[i % 3], "project": "p1", "cluster": "c1", "startTime": STARTED,
            "numNodes": 1, "resources": [{"hostname": host}], "metaData": {"jobName": f"j{job_id}"}}))
        assert r.status_code == 201, r.text
        lines += [f"cpu_load,cluster=c1,hostname={host},type=node value={i}.5 {now - t}" for t in range(0, 600, 10)]
    assert inst.write("\n".join(lines)).status_code == 200
    r = httpx.post(inst.web + "/api/jobs/stop_job/", headers=h, timeout=30,
                   content=orjson.dumps({"jobId": JOB_IDS[-1], "cluster": "c1", "stopTime": now}))
    assert r.status_code == 200, r.text
    r = httpx.post(inst.web + "/api/nodestate/", headers=h, timeout=30, content=orjson.dumps(
        {"cluster": "c1", "nodes": [{"hostname": host, "states": ["allocated"]} for host in HOSTS]}))
    assert r.status_code == 200, r.text


def with_examples(spec: dict) -> dict:
    """Examples that name this installation's data, so every phase also sends requests the code accepts.

    Aliases (PUT of start_job ...) get examples of their own: the same job twice is a duplicate.
    """
    now = int(time.time())
    paths = spec["paths"]

    def example(path: str, method: str, doc) -> None:
        op = paths[path][method] = copy.deepcopy(paths[path][method])
        op["requestBody"]["content"]["application/json"]["example"] = doc

    for method, job_id in (("post", 5001), ("put", 5002)):
        example("/api/jobs/start_job/", method, {"jobId": job_id, "user": "alice", "cluster": "c1",
                                                "startTime": now - 60, "resources": [{"hostname": "n01"}]})
    for method, job_id in (("post", JOB_IDS[0]), ("put", JOB_IDS[8])):
        example("/api/jobs/stop_job/", method, {"jobId": job_id, "cluster": "c1", "stopTime": now})
    paths["/api/users/"]["delete"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["example"] = \
        {"username": "bob"}
    user = paths["/api/user/{id}"]["post"]
    user["parameters"][0]["example"] = "mgr"  # a manager: any new project name is accepted
    user["requestBody"]["content"]["application/json"]["example"] = {"add-project": "p-example"}
    return spec


# Operations that delete what the others need run afterwards, in a second run.
DESTRUCTIVE = r"^DELETE /api/(jobs/delete_job|users/)"
# OpenID Connect needs a provider: its routes are tested against a real one (tests/test_auth_oidc.py).
NEEDS_PROVIDER = r"^GET /oidc-"


def run_schemathesis(inst, tmp: Path, selection: list[str], examples: int = EXAMPLES,
                     steps: int = STATEFUL_STEPS) -> dict:
    """schemathesis on the description as the installation serves it (its cluster names as enums)."""
    r = httpx.get(inst.web + "/swagger/openapi.yaml", timeout=30)
    assert r.status_code == 200, r.text
    spec = tmp / "openapi.yaml"
    doc = with_examples(yaml.safe_load(r.text))
    for method in ("get", "post"):  # a cross-login token of a user the installation has
        for p in doc["paths"]["/jwt-login"][method]["parameters"]:
            if p["name"] == "login-token":
                p["example"] = inst.token(user="alice", roles=["user"])
    spec.write_bytes(orjson.dumps(doc))
    report = tmp / "schemathesis.json"
    cfg = tmp / "schemathesis.toml"
    cfg.write_text(config(inst.web, inst.token(), report, examples, steps))
    st = Path(sys.executable).with_name("st")
    proc = subprocess.run([str(st), "--config-file", str(cfg), "run", str(spec), "--no-color", *selection],
                          capture_output=True, text=True, timeout=1800 + 20 * examples, cwd=tmp)
    (tmp / "schemathesis.out").write_text(proc.stdout + proc.stderr)
    assert report.exists(), proc.stdout[-5000:] + proc.stderr[-5000:]
    return {"rc": proc.returncode, "out": proc.stdout + proc.stderr, "report": orjson.loads(report.read_bytes())}


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("schemathesis"), ingest_workers=1, extra_config={"main": {"dev": True, "machine-state-dir": "./var/machine-state"},  # JWT cross-login on too, with our own keys
                                                                  "auth": {"jwts": {"max-age": "2000h", "cookie-name": "cc-jwt"}}}) as i:
        seed(i)
        yield i


GRAPHQL_USER_ERROR = re.compile(r"(argument|arguments|Time|NullableFloat|MetricScope|JobState|SchedulerState|"
                                r"MonitoringState|Variable|Int|Float|String|Boolean|ID)\b")


def test_graphql_arguments_never_fail_inside(inst, tmp_path):
    """schemathesis' GraphQL generator on ``POST /query``: every error is a user error naming what is wrong.

    The SDL (cc-backend's) cannot state ranges, so resolver errors are expected; what must not
    appear is an internal error (a request id instead of a message) or a 5xx.
    """
    report = tmp_path / "graphql.json"
    proc = subprocess.run([str(Path(sys.executable).with_name("st")), "run", inst.web + "/query", "--no-color",
                           "-H", f"Authorization: Bearer {inst.token()}", "--checks", "not_a_server_error",
                           "--max-examples", str(EXAMPLES), "--generation-deterministic", "--phases", "fuzzing",
                           "--report", "json", "--report-json-path", str(report), "--max-redirects", "0"],
                          capture_output=True, text=True, timeout=1800 + 20 * EXAMPLES, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    (tmp_path / "graphql.out").write_text(out)
    rep = orjson.loads(report.read_bytes())
    assert rep["complete"] and rep["test_cases"]["generated"] > 100, out[-3000:]
    assert not rep["errors"], out[-5000:]
    codes = {f["code"] for f in rep["failures"]}
    assert codes <= {"ST113", "ST206"}, (codes, out[-5000:])  # GraphQL errors in a 200, nothing else
    messages = re.findall(r'"message":"((?:[^"\\]|\\.)*)"', out)
    assert not [m for m in messages if "internal server error" in m], out[-5000:]
    odd = [m for m in messages if not GRAPHQL_USER_ERROR.match(m)]
    assert not odd, odd[:20]
    log = (inst.cfg.log_dir / "web.log").read_text(errors="replace")
    assert "internal error [request id" not in log, log[log.find("internal error [request id"):][:3000]


@pytest.mark.parametrize("selection", [["--exclude-name-regex", f"{DESTRUCTIVE}|{NEEDS_PROVIDER}"],
                                       ["--include-name-regex", DESTRUCTIVE, "--phases", "examples,coverage,fuzzing"]],
                         ids=["operations", "deletions"])
def test_every_operation_conforms_to_the_openapi_file(inst, tmp_path, selection):
    got = run_schemathesis(inst, tmp_path, selection)
    out, rep = got["out"], got["report"]
    summary = out[out.find("SUMMARY"):] if "SUMMARY" in out else out[-6000:]
    assert got["rc"] == 0, summary + "\n" + out[:20000]
    assert "Failures:" not in summary and "Errors:" not in summary, summary
    # a login route answers 401 to every token schemathesis makes up (it is meant to); the example token
    # logs in, and tests/test_auth_jwtlogin.py covers the accepted and refused tokens
    expected = {"missing_auth": {"GET /jwt-login", "POST /jwt-login"}}
    warnings = {kind: rest for kind, found in rep["warnings"].items()
                if (rest := [op for op in (found or []) if op not in expected.get(kind, set())])}
    assert not warnings, (warnings, summary)  # e.g. validation_mismatch: valid data mostly refused
    log = (inst.cfg.log_dir / "web.log").read_text(errors="replace")
    assert "internal error [request id" not in log, log[log.find("internal error [request id"):][:3000]
