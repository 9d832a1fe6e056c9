"""Every key ``config.json`` may hold, and what cc-py does with it.

A site copies its cc-backend configuration; it must learn at start which keys do
nothing here.  So no key is silently ignored: each is listed below as

* ``ok``    -- implemented (the module that reads it validates its value);
* ``warn``  -- accepted, but cc-py does not do what the key asks: a warning at start names it;
* ``error`` -- refused at start, because running without it would weaken security or
  lose data (say ``archive.kind: s3``: finished jobs would not go where the site expects).

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
main.enable-job-taggers                 warn   job taggers are not implemented yet: jobs get no automatic tags
main.validate                           ok
main.session-max-age                    ok
main.https-cert-file                    ok
main.https-key-file                     ok
main.redirect-http-to                   ok
main.redirect-http-addr                 ok
main.trusted-proxies                    ok
main.stop-jobs-exceeding-walltime       warn   not implemented yet: jobs running past their walltime are not stopped
main.short-running-jobs-duration        ok
main.emission-constant                  ok
main.machine-state-dir                  ok
main.systemd-unit                       warn   the log view is not implemented yet; logs are in var/log/
main.resampling                         ok
main.resampling.minimum-points          ok
main.resampling.trigger                 ok
main.resampling.resolutions             ok
main.nodestate-retention                warn   node-state retention is not implemented yet: node states are kept
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
archive.db-path                         error  the sqlite archive backend is not implemented yet (archive.kind must be 'file')
archive.endpoint                        error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.access-key                      error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.secret-key                      error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.bucket                          error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.region                          error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.use-path-style                  error  the s3 archive backend is not implemented yet (archive.kind must be 'file')
archive.compression                     warn   archive compression of old jobs is not implemented yet
archive.retention                       warn   archive retention is not implemented yet: jobs are kept forever
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
cron.commit-job-worker                  warn   has no effect: jobs are written to the database when they start
cron.footprint-worker                   warn   footprints of running jobs are not updated periodically yet (they are computed at archiving)
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
