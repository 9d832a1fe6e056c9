"""cluster.json: any bytes load or raise ConfigError naming the file; a loaded cluster answers
the questions the store, query engine and web process ask without raising."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from _common import main, scratch_dir

    from cc.clusters import MetricCatalog, load_cluster_file
    from cc.config import ConfigError

PATH = scratch_dir() / "fritz" / "cluster.json"
PATH.parent.mkdir()


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        c = load_cluster_file(PATH)
    except ConfigError as e:
        assert str(e).startswith(str(PATH)), e
        return
    cat = MetricCatalog({c.name: c}, {})
    assert cat.frequencies() and all(f > 0 for f in cat.frequencies())
    c.footprint_keys()
    for host in ("f0101", "a", ""):
        c.subcluster_for_host(host)
    for sc in c.subclusters:
        sc.nodes.hosts()
        for scope in ("node", "socket", "memoryDomain", "die", "core", "hwthread"):
            assert all(all(isinstance(t, int) for t in g) for g in sc.topology.groups(scope))
        sc.topology.accelerator_ids()


if __name__ == "__main__":
    main(one_input)
