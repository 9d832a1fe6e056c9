"""Job archive files: meta.json, data.json and data.json.gz with any content raise ArchiveError
or JobFileError naming the file, or read into a job and job data that the web process can
resample, aggregate and summarise without raising."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    import zlib

    from _common import main, scratch_dir

    from cc import jobdata
    from cc.archive import ArchiveError, JobArchive
    from cc.archive.dbsync import JobFileError, _load_json, check_job
    from cc.clusters import parse_cluster
    from cc.db import job_from_json

ROOT = scratch_dir()
ARCHIVE = JobArchive(ROOT, cache_bytes=0)
JOB_DIR = ARCHIVE.job_dir("fritz", 1234, 1700000000)
JOB_DIR.mkdir(parents=True)
CLUSTER = parse_cluster({
    "name": "fritz",
    "metricConfig": [{"name": "flops_any", "scope": "hwthread", "timestep": 60, "aggregation": "sum",
                      "unit": {"base": "F/s"}, "footprint": "avg"},
                     {"name": "mem_bw", "scope": "socket", "timestep": 60, "aggregation": "sum"}],
    "subClusters": [{"name": "main", "nodes": "f[0101-0104]",
                     "topology": {"node": [0, 1, 2, 3], "socket": [[0, 1], [2, 3]], "core": [[0], [1], [2], [3]]}}],
}, "fuzz cluster")
META = {"jobId": 1234, "cluster": "fritz", "subCluster": "main", "startTime": 1700000000, "duration": 600,
        "user": "u", "project": "p", "numNodes": 1, "numHwthreads": 4, "exclusive": 1, "jobState": "completed",
        "resources": [{"hostname": "f0101"}], "monitoringStatus": 3}
JOB = job_from_json(META)
JOB.monitoring_status = 3


def one_input(data: bytes) -> None:
    if not data:
        return
    kind, body = data[0] % 4, data[1:]
    for name in ("meta.json", "data.json", "data.json.gz"):
        (JOB_DIR / name).unlink(missing_ok=True)
    if kind == 0:  # meta.json: the archive reader, then the init-db / import-job checks
        path = JOB_DIR / "meta.json"
        path.write_bytes(body)
        try:
            ARCHIVE.load_meta("fritz", 1234, 1700000000)
        except ArchiveError as e:
            assert str(path) in str(e), e
        try:
            check_job(_load_json(path), str(path), {"fritz": CLUSTER})
        except JobFileError as e:
            assert str(e).startswith(str(path)), e
        return
    name = "data.json" if kind == 1 else "data.json.gz"
    if kind == 3:  # a valid gzip around the fuzzed JSON, to get past the CRC
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        body = c.compress(body) + c.flush()
    (JOB_DIR / name).write_bytes(body)
    try:
        data = jobdata.load_archived(ARCHIVE, JOB, None, None, 120, minimum_points=2)
    except ArchiveError as e:
        assert str(JOB_DIR / name) in str(e), e
        return
    jobdata.load_archived(ARCHIVE, JOB, None, ["node"], 0)
    jobdata.footprint(JOB, CLUSTER, {})
    assert isinstance(data, dict)


if __name__ == "__main__":
    main(one_input)
