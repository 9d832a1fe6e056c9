"""Reading Slurm's ``--json`` output of two generations into one job model.

Slurm 22.05 (OpenAPI data_parser v0.0.38, Debian 12) and 24.x/25.x (v0.0.40+) disagree on
almost every field the adapter needs: integers are plain or ``{set, infinite, number}``,
strings are plain or one-element lists, ``job_resources`` is a dict of sockets keyed by
index in 22.05 and a list of ``allocation`` records with all cores in 24.x, and squeue
in 22.05 ignores ``-j`` filters.  Everything version-specific is confined to this module;
the rest of the adapter sees :class:`SlurmJob`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class SlurmFormatError(Exception):
    """Slurm printed something that is not the JSON this adapter understands (message says what)."""


# -- scalar helpers ------------------------------------------------------------------


def slurm_int(v: Any) -> int | None:
    """A Slurm integer in either generation; None when unset or infinite."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, dict):
        if not v.get("set", True) or v.get("infinite", False):
            return None
        v = v.get("number")
        if v is None:
            return None
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit():
            return int(s)
    return None


def slurm_str(v: Any) -> str:
    """A Slurm string that may be wrapped in a list (24.x) or null (22.05); first element wins."""
    if v is None:
        return ""
    if isinstance(v, list):
        return str(v[0]) if v else ""
    return str(v)


def slurm_strs(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x) for x in v]
    return [str(v)] if str(v) else []


def _load(doc: Any, key: str, command: str) -> list[dict]:
    if not isinstance(doc, dict):
        raise SlurmFormatError(f"{command}: expected a JSON object, got {type(doc).__name__}")
    jobs = doc.get(key)
    if not isinstance(jobs, list):
        errs = doc.get("errors") or []
        raise SlurmFormatError(f"{command}: JSON has no '{key}' list" + (f" (errors: {errs})" if errs else ""))
    return [j for j in jobs if isinstance(j, dict)]


# -- host lists and GRES -------------------------------------------------------------

_BRACKET = re.compile(r"^(.*?)\[([^\]]+)\](.*)$")


def expand_hostlist(spec: str) -> list[str]:
    """``node[01-03,07],gpu1`` -> ``[node01, node02, node03, node07, gpu1]`` (Slurm's hostlist syntax)."""
    spec = (spec or "").strip()
    if not spec or spec.lower() in ("none assigned", "(null)", "none"):
        return []
    parts, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out: list[str] = []
    for p in parts:
        out.extend(_expand_one(p.strip()))
    return out


def _expand_one(p: str) -> list[str]:
    m = _BRACKET.match(p)
    if not m:
        return [p] if p else []
    prefix, body, suffix = m.groups()
    names = []
    for rng in body.split(","):
        lo, sep, hi = rng.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise SlurmFormatError(f"cannot expand host list {p!r}: bad range {rng!r}")
        if not sep:
            names.append(lo)
            continue
        width = len(lo)
        names.extend(str(i).zfill(width) for i in range(int(lo), int(hi) + 1))
    return [x for n in names for x in _expand_one(prefix + n + suffix)]


def expand_ranges(text: str) -> list[int]:
    """``0-2,5`` -> ``[0, 1, 2, 5]``."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if lo.isdigit() and not sep:
            out.append(int(lo))
        elif lo.isdigit() and hi.isdigit():
            out.extend(range(int(lo), int(hi) + 1))
    return out


_GRES = re.compile(r"^(?P<name>[^:(]+)(?::(?P<type>[^:(]+))?(?::(?P<count>\d+))?(?:\((?P<dom>[A-Za-z]+):(?P<idx>[^)]*)\))?$")


def gpu_indices(gres_detail: str) -> list[int]:
    """GPU device indices of one node's ``gres_detail`` entry.

    Accepts ``gpu:2(IDX:0-1)`` (untyped, 22.05), ``gpu:h100:4(IDX:0-3)`` and several
    GRES separated by commas (``gpu:a100:1(IDX:0),nic:1``); other GRES are ignored.
    """
    out: list[int] = []
    depth, cur, items = 0, "", []
    for ch in gres_detail or "":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    for item in items:
        m = _GRES.match(item.strip())
        if not m or m.group("name") != "gpu":
            continue
        if m.group("dom") == "IDX" and m.group("idx") is not None:
            out.extend(expand_ranges(m.group("idx")))
    return sorted(set(out))


def tres_count(entries: Any, ttype: str, name: str = "") -> int | None:
    """Count of one TRES in sacct's list form; typed GPUs (``gpu:h100``) add up when no plain entry exists."""
    if not isinstance(entries, list):
        return None
    plain, typed = None, 0
    seen_typed = False
    for e in entries:
        if not isinstance(e, dict) or e.get("type") != ttype:
            continue
        ename = slurm_str(e.get("name"))
        cnt = slurm_int(e.get("count"))
        if cnt is None or cnt < 0:
            cnt = 0
        if ename == name:
            plain = cnt
        elif name and ename.startswith(name + ":"):
            typed += cnt
            seen_typed = True
    if plain is not None:
        return plain
    return typed if seen_typed else None


def tres_str_count(tres: str, key: str) -> int | None:
    """Count of one TRES in squeue's string form ``cpu=4,mem=1G,gres/gpu=2``; typed GPUs add up as above."""
    plain, typed, seen_typed = None, 0, False
    for part in (tres or "").split(","):
        k, sep, v = part.partition("=")
        if not sep or not v.isdigit():
            continue
        if k == key:
            plain = int(v)
        elif k.startswith(key + ":"):
            typed += int(v)
            seen_typed = True
    if plain is not None:
        return plain
    return typed if seen_typed else None


# -- the job model ------------------------------------------------------------------


@dataclass
class NodeAlloc:
    """One node of a job's allocation as slurmctld knows it: global core ids and GPU indices."""

    hostname: str
    cores_per_socket: int | None  # None: unknown from this JSON (22.05 lists allocated cores only)
    gpus: list[int] = field(default_factory=list)
    sockets_cores: list[tuple[int, int]] = field(default_factory=list)  # (socket, core) pairs


@dataclass
class SlurmJob:
    """What the adapter needs of one job, from sacct (accounting) and/or squeue (controller)."""

    job_id: int
    cluster: str
    state: str  # upper case Slurm base state, e.g. RUNNING, COMPLETED, CANCELLED
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    array_job_id: int = 0
    submit_time: int = 0
    start_time: int = 0
    end_time: int = 0
    time_limit_min: int | None = None
    nodes: list[str] = field(default_factory=list)
    num_nodes: int = 0
    num_hwthreads: int = 0
    num_acc: int = 0
    script: str = ""  # sacct's stored script (24.x with AccountingStoreFlags=job_script)
    # controller-side details (squeue); None until merged
    alloc: list[NodeAlloc] | None = None
    threads_per_core: int | None = None
    shared: str | None = None
    exclusive: bool = False
    from_sacct: bool = False

    def merge_controller(self, sq: SlurmJob) -> None:
        """Take what slurmctld knows better (squeue) into an accounting record: the allocation, and the name.

        slurmdbd records a job before it has its name and shows the placeholder
        ``allocation`` meanwhile -- for a short job sometimes even once it has finished
        (seen with Slurm 22.05) -- while slurmctld always has the real name.
        """
        if sq.name:
            self.name = sq.name
        self.alloc = sq.alloc
        self.threads_per_core = sq.threads_per_core
        self.shared = sq.shared
        self.exclusive = sq.exclusive
        if not self.nodes and sq.nodes:
            self.nodes = sq.nodes
        if not self.num_acc and sq.num_acc:
            self.num_acc = sq.num_acc


def _base_state(v: Any) -> str:
    s = slurm_str(v).strip().upper()
    return s.split()[0] if s else ""


def parse_sacct(doc: Any) -> list[SlurmJob]:
    """Jobs of ``sacct --json`` (either generation)."""
    jobs = _load(doc, "jobs", "sacct")
    out = []
    for j in jobs:
        jid = slurm_int(j.get("job_id"))
        if jid is None:
            raise SlurmFormatError(f"sacct: job without job_id: {str(j)[:200]}")
        t = j.get("time") or {}
        st = j.get("state") or {}
        tres = j.get("tres") or {}
        req = j.get("required") or {}
        arr = j.get("array") or {}
        assoc = j.get("association") or {}
        hwt = tres_count(tres.get("allocated"), "cpu") or tres_count(tres.get("requested"), "cpu") \
            or slurm_int(req.get("CPUs")) or 0
        acc = tres_count(tres.get("allocated"), "gres", "gpu")
        if acc is None:
            acc = tres_count(tres.get("requested"), "gres", "gpu") or 0
        nodes = expand_hostlist(slurm_str(j.get("nodes")))
        out.append(SlurmJob(
            job_id=jid,
            cluster=slurm_str(j.get("cluster")) or slurm_str(assoc.get("cluster")),
            state=_base_state(st.get("current") if isinstance(st, dict) else st),
            name=slurm_str(j.get("name")),
            user=slurm_str(j.get("user")) or slurm_str(assoc.get("user")),
            account=slurm_str(j.get("account")) or slurm_str(assoc.get("account")),
            partition=slurm_str(j.get("partition")),
            array_job_id=slurm_int(arr.get("job_id")) or 0,
            submit_time=slurm_int(t.get("submission")) or 0,
            start_time=slurm_int(t.get("start")) or 0,
            end_time=slurm_int(t.get("end")) or 0,
            time_limit_min=slurm_int(t.get("limit")),
            nodes=nodes,
            num_nodes=slurm_int(j.get("allocation_nodes")) or len(nodes),
            num_hwthreads=hwt,
            num_acc=acc,
            script=slurm_str(j.get("script")),
            from_sacct=True,
        ))
    return out


def _alloc_2205(jr: dict) -> list[NodeAlloc]:
    out = []
    for node in jr.get("allocated_nodes") or []:
        pairs = []
        for sock, sd in (node.get("sockets") or {}).items():
            for core, status in ((sd or {}).get("cores") or {}).items():
                if slurm_str(status).lower().startswith("alloc") and str(sock).isdigit() and str(core).isdigit():
                    pairs.append((int(sock), int(core)))
        out.append(NodeAlloc(hostname=slurm_str(node.get("nodename")), cores_per_socket=None,
                             sockets_cores=sorted(pairs)))
    return out


def _alloc_24(nodes: dict) -> list[NodeAlloc]:
    out = []
    for a in nodes.get("allocation") or []:
        pairs, cps = [], 0
        for s in a.get("sockets") or []:
            sidx = slurm_int(s.get("index"))
            cores = s.get("cores") or []
            top = max((slurm_int(c.get("index")) or 0 for c in cores), default=-1) + 1
            cps = max(cps, len(cores), top)
            for c in cores:
                status = [x.upper() for x in slurm_strs(c.get("status"))]
                cidx = slurm_int(c.get("index"))
                if sidx is not None and cidx is not None and "ALLOCATED" in status:
                    pairs.append((sidx, cidx))
        out.append(NodeAlloc(hostname=slurm_str(a.get("name")), cores_per_socket=cps or None,
                             sockets_cores=sorted(pairs)))
    return out


def parse_squeue(doc: Any) -> list[SlurmJob]:
    """Jobs of ``squeue --json`` (same schema as ``scontrol show job --json``), either generation."""
    jobs = _load(doc, "jobs", "squeue")
    out = []
    for j in jobs:
        jid = slurm_int(j.get("job_id"))
        if jid is None:
            raise SlurmFormatError(f"squeue: job without job_id: {str(j)[:200]}")
        jr = j.get("job_resources") or {}
        alloc: list[NodeAlloc] | None = None
        tpc = None
        if isinstance(jr, dict) and jr:
            nodes = jr.get("nodes")
            if isinstance(nodes, dict) and "allocation" in nodes:  # 24.x / 25.x
                alloc = _alloc_24(nodes)
            elif "allocated_nodes" in jr:  # 22.05
                alloc = _alloc_2205(jr)
            tpc = slurm_int(jr.get("threads_per_core"))
        gres = [slurm_str(g) for g in (j.get("gres_detail") or [])]
        if alloc is not None:
            for i, a in enumerate(alloc):
                if i < len(gres):
                    a.gpus = gpu_indices(gres[i])
        tres = slurm_str(j.get("tres_alloc_str")) or slurm_str(j.get("tres_req_str"))
        hostlist = slurm_str(j.get("nodes"))
        shared_v = j.get("shared")
        excl = [x.lower() for x in slurm_strs(j.get("exclusive"))]
        out.append(SlurmJob(
            job_id=jid,
            cluster=slurm_str(j.get("cluster")),
            state=_base_state(j.get("job_state")),
            name=slurm_str(j.get("name")),
            user=slurm_str(j.get("user_name")),
            account=slurm_str(j.get("account")),
            partition=slurm_str(j.get("partition")),
            array_job_id=slurm_int(j.get("array_job_id")) or 0,
            submit_time=slurm_int(j.get("submit_time")) or 0,
            start_time=slurm_int(j.get("start_time")) or 0,
            end_time=slurm_int(j.get("end_time")) or 0,
            time_limit_min=slurm_int(j.get("time_limit")),
            nodes=expand_hostlist(hostlist) if hostlist else [a.hostname for a in alloc or []],
            num_nodes=slurm_int(j.get("node_count")) or len(alloc or []),
            num_hwthreads=tres_str_count(tres, "cpu") or slurm_int(j.get("cpus")) or 0,
            num_acc=tres_str_count(tres, "gres/gpu") or 0,
            alloc=alloc,
            threads_per_core=tpc if tpc and tpc > 0 else None,
            shared=slurm_str(shared_v).lower() if shared_v is not None else None,
            exclusive="true" in excl or "exclusive" in excl,
        ))
    return out


@dataclass(frozen=True)
class NodeTopology:
    sockets: int
    cores_per_socket: int
    threads_per_core: int


def parse_nodes(doc: Any) -> dict[str, NodeTopology]:
    """Node topology from ``scontrol show nodes --json`` (23.02+) or ``sinfo --json`` (22.05): same node keys."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise SlurmFormatError("node list JSON has no 'nodes' list")
    out = {}
    for n in doc["nodes"]:
        if not isinstance(n, dict):
            continue
        name = slurm_str(n.get("name"))
        s, c, t = slurm_int(n.get("sockets")), slurm_int(n.get("cores")), slurm_int(n.get("threads"))
        if name and s and c:
            out[name] = NodeTopology(s, c, t or 1)
    return out


def _gpus_used(gres: str) -> int:
    """``gpu:0``, ``gpu:a100:2(IDX:0-1)``, ``gpu:h100:4(IDX:0-3),shard:0`` -> GPUs in use."""
    n = 0
    for part in (gres or "").split(","):
        fields = part.split("(", 1)[0].split(":")
        if fields[0] == "gpu" and len(fields) >= 2 and fields[-1].isdigit():
            n += int(fields[-1])
    return n


def parse_node_states(doc: Any) -> list[dict[str, Any]]:
    """``POST /api/nodestate/`` node entries from ``scontrol show nodes --json`` (23.02+) or ``sinfo --json``
    (22.05): hostname, states (``state`` plus ``state_flags``, lower case), allocated CPUs, memory, GPUs."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise SlurmFormatError("node list JSON has no 'nodes' list")
    out = []
    for n in doc["nodes"]:
        if not isinstance(n, dict) or not slurm_str(n.get("name")):
            continue
        states = [s.lower() for s in slurm_strs(n.get("state")) + slurm_strs(n.get("state_flags"))]
        out.append({"hostname": slurm_str(n.get("name")), "states": list(dict.fromkeys(states)),
                    "cpusAllocated": slurm_int(n.get("alloc_cpus")) or 0,
                    "memoryAllocated": slurm_int(n.get("alloc_memory")) or 0,
                    "gpusAllocated": _gpus_used(slurm_str(n.get("gres_used")))})
    return out
