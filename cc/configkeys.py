"""Every key ``config.json`` may hold, and what cc-py does with it.

A site copies its cc-backend configuration; it must learn at start which keys do
nothing here.  So no key is silently ignored: each is listed below as

* ``ok``    -- implemented (the module that reads it validates its value);
* ``warn``  -- accepted, but cc-py does not do what the key asks: a warning at start names it;
* ``error`` -- refused at start, because running without it would weaken security or
  lose data (finished jobs would not go where the site expects).

A key not listed is a start-up error (cc-backend refuses unknown keys too), which also
catches typos.  A ``warn``/``error`` entry covers its whole subtree, ``ok`` entries whose
children are free-form end in ``.*`` (names chosen by the site, e.g. metric names), and
``[]`` stands for the items of a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# path  state  note (for warn/error: what happens instead / what to do)
_TABLE = """
main                                    ok
main.addr                               ok
main.api-allowed-ips                    ok
main.metrics-allowed-ips                ok
main.api-subjects                       ok
main.api-subjects.subject-job-event     ok
main.api-subjects.subject-node-state    ok
main.api-subjects.job-concurrency       warn   events are handled one at a time, in order (the job database takes one write at a time, and a stop must follow its start)
main.api-subjects.node-concurrency      warn   events are handled one at a time, in order (the job database takes one write at a time)
main.user                               ok
main.group                              ok
main.disable-authentication             ok
main.embed-static-files                 warn   has no effect: the UI is always served from the installation's frontend/
main.static-files                       warn   has no effect: the UI is always served from the installation's frontend/
main.db                                 ok
main.enable-job-taggers                 ok     app tags on job start, job classes on job stop (rules: cc/tagger/rules, var/tagger)
main.validate                           ok
main.session-max-age                    ok
main.https-cert-file                    ok
main.https-key-file                     ok
main.redirect-http-to                   ok
main.redirect-http-addr                 ok
main.trusted-proxies                    ok
main.stop-jobs-exceeding-walltime       ok
main.short-running-jobs-duration        ok
main.emission-constant                  ok
main.machine-state-dir                  ok
main.systemd-unit                       warn   the Logs page reads the processes' files in var/log/, not journald
main.resampling                         ok
main.resampling.minimum-points          ok
main.resampling.trigger                 ok
main.resampling.resolutions             ok
main.nodestate-retention                ok
main.nodestate-retention.policy         ok
main.nodestate-retention.age            ok
main.nodestate-retention.target-kind    ok
main.nodestate-retention.target-path    ok
main.nodestate-retention.max-file-size-mb ok
main.nodestate-retention.target-endpoint ok
main.nodestate-retention.target-bucket  ok
main.nodestate-retention.target-access-key ok
main.nodestate-retention.target-secret-key ok
main.nodestate-retention.target-region  ok
main.nodestate-retention.target-use-path-style ok
main.db-config                          warn   SQLite tuning keys are not applied (cc-py sets its own pragmas)
main.dev                                ok
main.jwts                               ok
main.jwts.max-age                       ok
auth                                    ok
auth.jwts                               ok
auth.jwts.max-age                       ok
auth.jwts.cookie-name                   ok
auth.jwts.validate-user                 ok
auth.jwts.trusted-issuer                ok
auth.jwts.sync-user-on-login            ok
auth.jwts.update-user-on-login          ok
auth.ldap                               ok
auth.ldap.url                           ok
auth.ldap.user-base                     ok
auth.ldap.search-dn                     ok
auth.ldap.user-bind                     ok
auth.ldap.user-filter                   ok
auth.ldap.username-attr                 ok
auth.ldap.uid-attr                      ok
auth.ldap.sync-interval                 ok
auth.ldap.sync-del-old-users            ok
auth.ldap.sync-user-on-login            ok
auth.ldap.update-user-on-login          ok
auth.ldap.ca-file                       ok
auth.ldap.start-tls                     ok
auth.oidc                               ok
auth.oidc.provider                      ok
auth.oidc.sync-user-on-login            ok
auth.oidc.update-user-on-login          ok
auth.session-max-age                    ok
archive                                 ok
archive.kind                            ok
archive.path                            ok
archive.retry-delay                     ok
archive.max-attempts                    ok
archive.db-path                         ok
archive.endpoint                        ok
archive.access-key                      ok
archive.secret-key                      ok
archive.bucket                          ok
archive.region                          ok
archive.use-path-style                  ok
archive.compression                     ok
archive.retention                       ok
archive.retention.policy                ok
archive.retention.age                   ok
archive.retention.include-db            ok
archive.retention.omit-tagged           ok
archive.retention.format                ok
archive.retention.target-kind           ok
archive.retention.target-path           ok
archive.retention.target-endpoint       ok
archive.retention.target-bucket         ok
archive.retention.target-access-key     ok
archive.retention.target-secret-key     ok
archive.retention.target-region         ok
archive.retention.target-use-path-style ok
archive.retention.max-file-size-mb      ok
archive.retention.location              ok
metric-store                            ok
metric-store.retention-in-memory        ok
metric-store.memory-cap                 ok
metric-store.checkpoint-interval        ok
metric-store.checkpoints                ok
metric-store.checkpoints.directory      ok
metric-store.checkpoints.file-format    ok
metric-store.checkpoints.max-wal-size   ok
metric-store.checkpoints.interval       ok
metric-store.checkpoints.wal            ok
metric-store.checkpoints.wal-sync       ok
metric-store.checkpoints.wal-sync-interval  ok
metric-store.cleanup                    ok
metric-store.cleanup.mode               ok
metric-store.cleanup.directory          ok
metric-store.cleanup.interval           ok
metric-store.num-workers                ok
metric-store.ingest-addr                ok
metric-store.ingest-workers             ok
metric-store.max-body-bytes             ok
metric-store.ingest-tls                 ok
metric-store.nats-subscriptions         ok
metric-store.nats-subscriptions[]       ok
metric-store.nats-subscriptions[].subscribe-to  ok
metric-store.nats-subscriptions[].cluster-tag   ok
metric-store.nats-subscriptions[].stream        ok
metric-store.nats-subscriptions[].durable       ok
metric-store.nats-subscriptions[].ack-wait      ok
metric-store.debug                      warn   the Go store's debugging aids (dump-to-file, gops) do not exist here; see GET /api/debug
metric-store-external                   ok
metric-store-external[]                 ok
metric-store-external[].scope           ok
metric-store-external[].url             ok
metric-store-external[].token           ok
nats                                    ok
nats.address                            ok
nats.username                           ok
nats.password                           ok
nats.creds-file-path                    ok
nats.nkey-seed-file                     ok
cron                                    ok
cron.duration-worker                    ok
cron.commit-job-worker                  warn   has no effect: cc-backend buffers job starts and commits them on this interval; cc-py writes every job to the database when it starts
cron.footprint-worker                   ok
ui                                      warn   UI defaults from config.json are not applied yet: each user's settings start from cc-py's defaults
ui-file                                 warn   UI defaults from a file are not applied yet: each user's settings start from cc-py's defaults
metrics                                 ok
metrics.*                               ok
clusters                                ok
clusters[]                              ok
clusters[].*                            ok
slurm-adapter                           ok
slurm-adapter.config                    ok
"""


@dataclass(frozen=True)
class KeyRule:
    state: str  # ok | warn | error
    note: str


def _parse(table: str) -> dict[str, KeyRule]:
    rules: dict[str, KeyRule] = {}
    for line in table.strip().splitlines():
        path, state, *note = line.split(None, 2)
        if state not in ("ok", "warn", "error"):
            raise ValueError(f"configkeys: bad state {state!r} for {path}")
        rules[path] = KeyRule(state, note[0] if note else "")
    return rules


RULES = _parse(_TABLE)


@dataclass
class KeyReport:
    """What ``audit`` found: keys that do nothing here (warnings) and keys refused (errors)."""

    warnings: list[str]
    errors: list[str]


def audit(raw: dict[str, Any]) -> KeyReport:
    """Classify every key of a parsed ``config.json`` against :data:`RULES`."""
    report = KeyReport([], [])
    _walk(raw, "", report)
    return report


def _rule(path: str) -> KeyRule | None:
    if path in RULES:
        return RULES[path]
    parent, _, _ = path.rpartition(".")
    return RULES.get(f"{parent}.*") if parent else None


def _walk(node: Any, prefix: str, report: KeyReport) -> None:
    if isinstance(node, list):
        if f"{prefix}[]" in RULES:
            for item in node:
                _walk(item, f"{prefix}[]", report)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        rule = _rule(path)
        if rule is None:
            report.errors.append(f"unknown config key '{path}' (not a cc-backend or cc-py key; a typo?)")
        elif rule.state == "warn":
            report.warnings.append(f"config key '{path}' is not supported: {rule.note}")
        elif rule.state == "error":
            report.errors.append(f"config key '{path}' is not supported: {rule.note}")
        elif path in RULES:  # an exact entry: its children are listed too (a wildcard's are free-form)
            _walk(value, path, report)
