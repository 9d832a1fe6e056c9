"""A simulated HPC site: nodes that send metrics, a batch scheduler, and weeks of job history.

* :mod:`cc.sim.hardware` - the demo clusters' ``cluster.json`` (CPU cluster ``fritz``, GPU
  cluster ``alex``) and what the simulator reads from any cluster.json.
* :mod:`cc.sim.profiles` - job profiles (compute-, memory-, I/O-bound, idle, GPU...), their
  phases and the vectorised metric model.
* :mod:`cc.sim.nodes` - the live node simulator (line protocol for the agent's sinks).
* :mod:`cc.sim.workload`, :mod:`cc.sim.placement`, :mod:`cc.sim.scheduler` - users and
  applications, node/core/GPU allocation, the queue and job life cycle.
* :mod:`cc.sim.runner` - the live simulation against an installation (REST + sinks).
* :mod:`cc.sim.history` - finished jobs for the archive and the database.
"""
