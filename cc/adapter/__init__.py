"""cc-adapter: keeps the job database in step with Slurm, speaking cc-backend's REST job API.

A Python counterpart of ClusterCockpit's cc-slurm-adapter with the same configuration,
command line, Prolog/Epilog socket protocol and REST traffic, so either adapter works
with either backend.  Modules: ``slurmjson`` (Slurm 22.05 and 24.x/25.x JSON),
``mapping`` (payloads), ``slurm`` (commands), ``backend`` (REST), ``sync`` (state
machine), ``daemon`` (tasks and sockets), ``hook`` (Prolog/Epilog mode), ``cli``.
"""
