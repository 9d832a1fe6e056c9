"""Who submits what: users, projects, applications, job sizes, durations, outcomes, job scripts.

A :class:`JobSpec` is a job as a user submits it (before placement): application,
profile and its drawn parameters, requested size, walltime, how long it will really run
and how it will end.  Sizes follow what HPC centres see: most jobs small (one node, a
few cores, one GPU), a tail of large ones; durations log-normal, capped by the walltime;
most jobs complete, some fail early, time out, are cancelled or run out of memory.
Array jobs submit several equal tasks at once.  The same generator feeds the live
scheduler (durations divided by the time compression) and the history.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cc.sim.profiles import draw_params

HOUR = 3600
WALLTIMES = (0.5, 1, 2, 4, 6, 8, 12, 24)  # hours a user may ask for


@dataclass(frozen=True)
class App:
    name: str
    kind: str                      # "cpu" (whole nodes), "shared" (cores of a shared node) or "gpu"
    profiles: dict[str, float]
    sizes: tuple[int, ...]         # nodes (cpu), cores (shared) or GPUs (gpu); drawn uniformly
    median_h: float
    module: str
    command: str
    names: tuple[str, ...]
    scale: dict[str, float] = field(default_factory=dict)  # parameter multipliers (e.g. more I/O)
    array_prob: float = 0.0


APPS: dict[str, App] = {a.name: a for a in (
    App("gromacs", "cpu", {"balanced": 0.6, "compute": 0.3, "idle": 0.1}, (1, 1, 1, 1, 2, 2, 4, 8), 2,
        "gromacs/2023.3-gcc11.2-impi", "srun gmx_mpi mdrun -deffnm {name} -maxh {maxh}",
        ("md_prod", "npt_equil", "lipid_bilayer", "protein_fold", "membrane_md"), array_prob=0.08),
    App("lammps", "cpu", {"compute": 0.5, "balanced": 0.4, "memory": 0.1}, (1, 2, 2, 4, 8, 16), 3,
        "lammps/20230802-intel2022", "srun lmp -in in.{name}", ("polymer_melt", "crack_prop", "eam_alloy")),
    App("openfoam", "cpu", {"memory": 0.8, "balanced": 0.15, "idle": 0.05}, (1, 1, 2, 4, 4, 8, 16), 3,
        "openfoam/v2306", "srun simpleFoam -parallel", ("wing_rans", "pipe_les", "motorbike", "nozzle_flow")),
    App("wrf", "cpu", {"memory": 0.5, "io": 0.3, "balanced": 0.2}, (2, 4, 4, 8), 3,
        "wrf/4.5-intel-impi", "srun ./wrf.exe", ("wrf_europe_3km", "wrf_alps", "era5_downscale"),
        scale={"ckpt_bps": 2.0}),
    App("vasp", "cpu", {"compute": 0.6, "memory": 0.3, "balanced": 0.1}, (1, 1, 2, 4), 4,
        "vasp/6.4.1-intel", "srun vasp_std", ("relax_slab", "band_structure", "md_300K", "phonons"),
        scale={"mem_frac": 1.6}),
    App("cp2k", "cpu", {"compute": 0.5, "balanced": 0.5}, (1, 2, 4, 8), 2,
        "cp2k/2023.2", "srun cp2k.psmp -i {name}.inp", ("aimd_water", "geo_opt", "qmmm")),
    App("gadget", "cpu", {"compute": 0.4, "memory": 0.3, "io": 0.3}, (2, 4, 8, 8, 16, 32), 6,
        "gadget4/2023", "srun ./Gadget4 param.txt", ("cosmo_box512", "galaxy_merger", "zoom_halo")),
    App("python", "shared", {"io": 0.4, "idle": 0.3, "balanced": 0.3}, (1, 1, 2, 4, 8, 8, 16, 36), 0.5,
        "python/3.11-anaconda", "python {name}.py", ("postprocess", "analysis", "plot_results", "convert_h5"),
        array_prob=0.2),
    App("matlab", "shared", {"compute": 0.5, "idle": 0.5}, (1, 4, 8), 1,
        "matlab/R2023b", "matlab -batch {name}", ("param_sweep", "fit_model")),
    App("pytorch", "gpu", {"gpu": 0.85, "gpu_idle": 0.15}, (1, 1, 2, 4, 4, 8, 16), 4,
        "python/pytorch-2.1", "srun python train.py --config {name}.yaml",
        ("resnet50_train", "vit_finetune", "unet_seg", "llm_lora")),
    App("tensorflow", "gpu", {"gpu": 0.8, "gpu_idle": 0.2}, (1, 2, 4), 3,
        "tensorflow/2.14", "python train_{name}.py", ("bert_pretrain", "gan_faces")),
    App("gromacs-gpu", "gpu", {"gpu": 0.9, "gpu_idle": 0.1}, (1, 1, 2, 4), 5,
        "gromacs/2023.3-gcc11.2-cuda", "srun gmx mdrun -nb gpu -pme gpu -deffnm {name}",
        ("md_gpu_prod", "fep_lambda"), array_prob=0.1),
    App("alphafold", "gpu", {"gpu": 1.0}, (1, 1, 1, 2), 1.5,
        "alphafold/2.3.2", "run_alphafold.sh --fasta_paths={name}.fasta", ("fold_target", "multimer"),
        scale={"io_bps": 4.0, "gpu_util": 0.7}),
    App("jupyter", "gpu", {"gpu_idle": 0.7, "gpu": 0.3}, (1,), 2,
        "python/jupyter", "jupyter lab --no-browser", ("jupyter_session",)),
)}

# user -> (projects, {app: weight}, activity weight)
USERS: dict[str, tuple[tuple[str, ...], dict[str, float], float]] = {
    "alice": (("climate-sim", "ml-vision"), {"wrf": 3, "pytorch": 3, "python": 2, "gromacs": 2}, 3.0),
    "bob": (("cfd-aero",), {"openfoam": 7, "python": 2, "matlab": 1}, 2.0),
    "carol": (("qchem",), {"vasp": 6, "cp2k": 4}, 1.5),
    "dave": (("ml-vision", "nlp-lab"), {"pytorch": 5, "tensorflow": 3, "jupyter": 2}, 2.0),
    "erin": (("bio-md",), {"gromacs": 5, "gromacs-gpu": 3, "alphafold": 2}, 2.0),
    "frank": (("astro-nbody",), {"gadget": 6, "python": 4}, 1.0),
    "grace": (("cfd-aero", "climate-sim"), {"openfoam": 4, "wrf": 4, "python": 2}, 1.5),
    "heidi": (("materials",), {"lammps": 6, "vasp": 4}, 1.5),
    "ivan": (("nlp-lab",), {"pytorch": 6, "jupyter": 4}, 1.0),
    "judy": (("bio-md",), {"alphafold": 4, "python": 6}, 1.0),
    "mallory": (("materials",), {"lammps": 3, "matlab": 4, "python": 3}, 0.7),
    "oscar": (("astro-nbody", "qchem"), {"gadget": 3, "cp2k": 4, "matlab": 3}, 0.8),
}
OUTCOMES = (("completed", 0.74), ("failed", 0.09), ("cancelled", 0.07), ("timeout", 0.06), ("out_of_memory", 0.04))

@dataclass
class JobSpec:
    """A submitted job: who, what, how big, how long it asks for, how long it will run, how it ends."""

    cluster: str
    partition: str
    user: str
    project: str
    app: str
    name: str
    profile: str
    params: dict[str, float]
    kind: str            # "nodes", "cores" or "gpus"
    nodes: int           # nodes asked for
    units: int           # cores per node ("cores"), GPUs per node ("gpus"), 0 for whole nodes
    walltime: int        # seconds (already compressed in live mode)
    runtime: int         # how long it will run (<= walltime)
    outcome: str         # final job state
    submit_time: int
    seed: int
    array_size: int = 0
    job_id: int = 0
    array_job_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobSpec:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


@dataclass
class Partition:
    name: str
    kind: str            # "cpu" (exclusive nodes), "shared" or "gpu"
    nodes: int
    hwthreads: int
    gpus: int = 0


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


class Workload:
    """Draws job submissions for one cluster's partitions; ``time_scale`` compresses durations."""

    def __init__(self, cluster: str, partitions: list[Partition], *, time_scale: float = 1.0, min_runtime: int = 60,
                 users: dict[str, tuple[tuple[str, ...], dict[str, float], float]] | None = None):
        self.cluster = cluster
        self.partitions = partitions
        self.time_scale = max(1e-6, time_scale)
        self.min_runtime = min_runtime
        kinds = {p.kind for p in partitions}
        if "shared" not in kinds and "cpu" in kinds:
            kinds.add("shared")  # shared-core apps run on whole nodes then
        self.pairs: dict[tuple[str, str], float] = {}
        for user, (_, apps, activity) in (users or USERS).items():
            total = sum(apps.values())
            for app, w in apps.items():
                if APPS[app].kind in kinds:
                    self.pairs[(user, app)] = activity * w / total
        self.users = users or USERS

    def _partition(self, kind: str, rng: np.random.Generator) -> Partition:
        cands = [p for p in self.partitions if p.kind == kind] or [p for p in self.partitions if p.kind == "cpu"]
        return cands[int(rng.integers(len(cands)))]

    def draw(self, rng: np.random.Generator, submit_time: int) -> list[JobSpec]:
        """One submission: a job, or the tasks of an array job."""
        if not self.pairs:
            return []
        keys = list(self.pairs)
        w = np.array([self.pairs[k] for k in keys])
        user, app_name = keys[int(rng.choice(len(keys), p=w / w.sum()))]
        app = APPS[app_name]
        projects = self.users[user][0]
        project = projects[int(rng.integers(len(projects)))]
        part = self._partition(app.kind if app.kind != "cpu" else "cpu", rng)
        size = int(app.sizes[int(rng.integers(len(app.sizes)))])
        if part.kind == "gpu":
            per_node = max(1, part.gpus)
            nodes = max(1, min(part.nodes // 3 or 1, math.ceil(size / per_node)))
            kind, units = "gpus", min(size, per_node) if nodes == 1 else per_node
        elif part.kind == "shared":
            kind, nodes, units = "cores", 1, max(1, min(size, part.hwthreads // 2))
        elif app.kind == "shared":
            kind, nodes, units = "nodes", 1, 0
        else:
            kind, nodes, units = "nodes", max(1, min(size, part.nodes // 3 or 1)), 0
        array = int(rng.integers(4, 25)) if rng.random() < app.array_prob else 0
        base = f"{app.names[int(rng.integers(len(app.names)))]}"
        name = base if rng.random() < 0.5 else f"{base}_{int(rng.integers(1, 200))}"
        out = []
        median = app.median_h * HOUR * (0.4 if array else 1.0)
        for _ in range(max(1, array)):
            out.append(self._one(rng, user, project, app, part, name, kind, nodes, units, median, submit_time, array))
        return out

    def _one(self, rng, user, project, app, part, name, kind, nodes, units, median, submit_time, array) -> JobSpec:
        profile = _pick(rng, app.profiles)
        nominal = float(np.clip(0.5 * median * np.exp(1.2 * rng.standard_normal()), 120, 24 * HOUR))
        wall_h = next((h for h in WALLTIMES if h * HOUR >= nominal * rng.uniform(1.05, 1.8)), 24)
        walltime = int(wall_h * HOUR)
        outcome = _pick(rng, dict(OUTCOMES))
        if profile in ("idle", "gpu_idle") and rng.random() < 0.4:
            outcome = "timeout"  # hung jobs sit until the walltime
        runtime = min(nominal, walltime)
        if outcome == "timeout":
            runtime = walltime
        elif outcome == "failed":
            runtime *= rng.uniform(0.005, 0.4)
        elif outcome == "cancelled":
            runtime *= rng.uniform(0.05, 0.9)
        elif outcome == "out_of_memory":
            runtime *= rng.uniform(0.2, 0.8)
        wall_real = max(self.min_runtime, int(round(walltime / self.time_scale)))
        run_real = int(min(wall_real, max(self.min_runtime, round(runtime / self.time_scale))))
        if outcome == "timeout":
            run_real = wall_real
        params = draw_params(profile, rng, app.scale, oom=outcome == "out_of_memory")
        return JobSpec(cluster=self.cluster, partition=part.name, user=user, project=project, app=app.name,
                       name=name, profile=profile, params=params, kind=kind, nodes=nodes, units=units,
                       walltime=wall_real, runtime=run_real, outcome=outcome, submit_time=int(submit_time),
                       seed=int(rng.integers(1 << 31)), array_size=array)

    def mean_demand(self, rng: np.random.Generator, samples: int = 1000) -> float:
        """Average node-seconds a submission occupies (to size the arrival rate for a target load)."""
        total = 0.0
        n = 0
        for _ in range(samples):
            for spec in self.draw(rng, 0):
                part = next(p for p in self.partitions if p.name == spec.partition)
                total += spec.runtime * node_share(spec, part)
            n += 1
        return total / max(1, n)


def node_share(spec: JobSpec, part: Partition) -> float:
    """How many nodes' worth of the partition a job occupies."""
    if spec.kind == "cores":
        return spec.units / max(1, part.hwthreads)
    if spec.kind == "gpus":
        return spec.nodes * spec.units / max(1, part.gpus)
    return float(spec.nodes)


# -- what Slurm would say ------------------------------------------------------------------------

def hms(seconds: int) -> str:
    seconds = int(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def job_script(spec: JobSpec, cores_per_node: int) -> str:
    """The batch script a user of this application would write (#SBATCH headers, modules, srun)."""
    app = APPS[spec.app]
    lines = ["#!/bin/bash -l", f"#SBATCH --job-name={spec.name}", f"#SBATCH --account={spec.project}",
             f"#SBATCH --partition={spec.partition}", f"#SBATCH --time={hms(spec.walltime)}"]
    if spec.kind == "nodes":
        lines += [f"#SBATCH --nodes={spec.nodes}", f"#SBATCH --ntasks-per-node={cores_per_node}",
                  "#SBATCH --exclusive"]
    elif spec.kind == "cores":
        lines += ["#SBATCH --ntasks=1", f"#SBATCH --cpus-per-task={spec.units}"]
    else:
        lines += [f"#SBATCH --nodes={spec.nodes}", f"#SBATCH --gres=gpu:{spec.partition}:{spec.units}"]
    if spec.array_size:
        lines.append(f"#SBATCH --array=1-{spec.array_size}")
    lines += ["#SBATCH --output=%x-%j.out", "#SBATCH --export=NONE", "", "unset SLURM_EXPORT_ENV",
              "module purge", f"module load {app.module}"]
    if spec.kind == "cores":
        lines.append(f"export OMP_NUM_THREADS={spec.units}")
    cmd = app.command.format(name=spec.name, maxh=round(spec.walltime / 3600 * 0.95, 2))
    if spec.profile == "idle" and spec.kind == "nodes":
        cmd = cmd.replace("srun ", "srun --ntasks=1 ") if "srun " in cmd else cmd  # the classic mistake
    lines += ["", f"cd $WORK/{spec.project}/{spec.name}", cmd, ""]
    return "\n".join(lines)


def _slurm_time(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def slurm_info(spec: JobSpec, resources: list[dict[str, Any]], start: int, hwthreads_per_node: int) -> str:
    """``scontrol show job -d`` as slurmctld prints it for a running job (what cc-slurm-adapter stores)."""
    hosts = [r["hostname"] for r in resources]
    ncpus = sum(len(r.get("hwthreads") or range(hwthreads_per_node)) for r in resources)
    gres = sum(len(r.get("accelerators") or ()) for r in resources)
    tres = f"cpu={ncpus},node={len(hosts)},billing={ncpus}" + (f",gres/gpu={gres}" if gres else "")
    alloc = []
    for r in resources:
        hw = r.get("hwthreads")
        ids = _ranges(hw) if hw else f"0-{hwthreads_per_node - 1}"
        g = f"gpu:{len(r['accelerators'])}" if r.get("accelerators") else ""
        alloc.append(f"     Nodes={r['hostname']} CPU_IDs={ids} Mem=0 GRES={g}")
    array = f" ArrayJobId={spec.array_job_id} ArrayTaskId={spec.job_id - spec.array_job_id + 1}" \
        if spec.array_job_id else ""
    lines = [
        f"JobId={spec.job_id}{array} JobName={spec.name}",
        f"   UserId={spec.user}({_uid(spec.user)}) GroupId={spec.project}({_uid(spec.project) + 1000}) MCS_label=N/A",
        f"   Priority={100000 - (spec.job_id % 50000)} Nice=0 Account={spec.project} QOS=normal",
        "   JobState=RUNNING Reason=None Dependency=(null)",
        "   Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0",
        f"   RunTime=00:00:00 TimeLimit={hms(spec.walltime)} TimeMin=N/A",
        f"   SubmitTime={_slurm_time(spec.submit_time)} EligibleTime={_slurm_time(spec.submit_time)}",
        f"   StartTime={_slurm_time(start)} EndTime={_slurm_time(start + spec.walltime)} Deadline=N/A",
        f"   Partition={spec.partition} AllocNode:Sid=login1:{1000 + spec.job_id % 30000}",
        f"   NodeList={compress_hosts(hosts)}",
        f"   BatchHost={hosts[0]}",
        f"   NumNodes={len(hosts)} NumCPUs={ncpus} NumTasks={ncpus if spec.kind == 'nodes' else 1} "
        f"CPUs/Task={1 if spec.kind == 'nodes' else max(1, spec.units)}",
        f"   TRES={tres}",
        *alloc,
        f"   OverSubscribe={'NO' if spec.kind == 'nodes' else 'OK'} Contiguous=0 Licenses=(null) Network=(null)",
        f"   Command=/home/{spec.user}/jobs/{spec.name}.sh",
        f"   WorkDir=/home/{spec.user}/jobs",
        f"   StdOut=/home/{spec.user}/jobs/{spec.name}-{spec.job_id}.out",
    ]
    return "\n".join(lines) + "\n"


def _uid(name: str) -> int:
    return 10000 + sum(ord(c) * 31 ** i for i, c in enumerate(name)) % 50000


def _ranges(ids: list[int]) -> str:
    ids = sorted(ids)
    parts, start, prev = [], ids[0], ids[0]
    for x in ids[1:] + [None]:  # type: ignore[list-item]
        if x is not None and x == prev + 1:
            prev = x
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(parts)


def compress_hosts(hosts: list[str]) -> str:
    """Slurm's host list notation: f[0101-0103,0105]."""
    if len(hosts) == 1:
        return hosts[0]
    prefix = hosts[0].rstrip("0123456789")
    if not all(h.startswith(prefix) and h[len(prefix):].isdigit() for h in hosts):
        return ",".join(hosts)
    width = len(hosts[0]) - len(prefix)
    nums = sorted(int(h[len(prefix):]) for h in hosts)
    rng = _ranges(nums)
    parts = []
    for p in rng.split(","):
        a, _, b = p.partition("-")
        parts.append(f"{int(a):0{width}d}" + (f"-{int(b):0{width}d}" if b else ""))
    return f"{prefix}[{','.join(parts)}]"
