"""Progress of long CLI work: bar with rate and ETA on a terminal, one summary line when piped."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

from cc.archive import dbsync
from cc.progress import ProgressBar
from tests.helpers import ROOT


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_bar_has_rate_and_eta_then_ends_with_newline():
    out = TtyBuffer()
    bar = ProgressBar(out, what="jobs", min_interval=0)
    assert bar.tty
    for done in range(0, 101, 10):
        bar(done, 100)
    text = out.getvalue()
    frames = [f for f in text.split("\r\x1b[K") if f]
    assert len(frames) == 11  # one per call: nothing throttled with min_interval=0
    assert re.search(r"\[#{15} {15}\]  50% 50/100 jobs  [\d,]+ jobs/s  ETA \d+:\d\d", frames[5]), frames[5]
    assert "ETA -" in frames[0]  # nothing done yet: no estimate
    assert frames[-1].startswith("[" + "#" * 30 + "] 100% 100/100 jobs") and text.endswith("\n")
    assert text.count("\n") == 1


def test_not_a_tty_one_summary_line():
    out = io.StringIO()
    bar = ProgressBar(out, what="jobs")
    assert not bar.tty
    for done in range(0, 1001, 7):
        bar(done, 1000)
    bar(1000, 1000)
    bar.finish()  # idempotent
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"1,000 jobs in \d+\.\ds \([\d,]+ jobs/s\)", lines[0]), lines


def test_finish_early_says_how_far_it_got():
    out = io.StringIO()
    bar = ProgressBar(out, what="files")
    bar(3, 10)
    bar.finish()
    assert re.fullmatch(r"3 of 10 files in \d+\.\ds \([\d,]+ files/s\)\n", out.getvalue())


def test_clear_line_only_on_a_terminal():
    plain, tty = io.StringIO(), TtyBuffer()
    ProgressBar(plain).clear_line()
    ProgressBar(tty).clear_line()
    assert plain.getvalue() == "" and tty.getvalue() == "\r\x1b[K"


def test_dbsync_keeps_the_old_name():
    assert dbsync.ProgressBar is ProgressBar
    ProgressBar(io.StringIO())(0, 0)  # the old call interface: an empty archive ends at once


def _init(tmp_path):
    from tests.archive_gen import generate, init_archive
    from tests.helpers import small_cluster

    (tmp_path / "config.json").write_text('{"archive": {"path": "arch"}, "main": {"db": "job.db"}}')
    clusters = init_archive(tmp_path / "arch", {"c1": small_cluster()})
    generate(tmp_path / "arch", clusters["c1"], 40)


def test_init_db_piped_prints_one_summary_line(tmp_path):
    _init(tmp_path)
    r = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(tmp_path / "config.json"), "init-db"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"40 jobs in \d+\.\ds \([\d,]+ jobs/s\)\n", r.stderr), r.stderr
    assert "40 jobs and" in r.stdout


def test_init_db_on_a_terminal_draws_the_bar(tmp_path):
    _init(tmp_path)
    main, sub = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(tmp_path / "config.json"),
                              "init-db"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sub, cwd=ROOT)
        os.close(sub)
        chunks = []
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert p.wait(120) == 0
    finally:
        os.close(main)
    text = b"".join(chunks).decode()
    assert "\x1b[K[" + "#" * 30 + "] 100% 40/40 jobs" in text and "jobs/s  ETA" in text, text


def test_migrate_db_piped_prints_one_summary_line(tmp_path):
    (tmp_path / "config.json").write_text('{"main": {"db": "job.db"}}')
    r = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(tmp_path / "config.json"), "migrate-db"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+ statements in \d+\.\ds \([\d,]+ statements/s\)\n", r.stderr), r.stderr
    assert "created" in r.stdout
    again = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(tmp_path / "config.json"),
                            "migrate-db"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert again.stderr == "" and "already at version" in again.stdout  # nothing to do: no bar


def test_directory_sync_reports_progress(tmp_path):
    from cc.db import connect, migrate, transaction
    from cc.db._users import sync_directory_users

    migrate(tmp_path / "job.db")
    conn = connect(tmp_path / "job.db")
    try:
        seen = []
        res = transaction(conn, sync_directory_users, {"u1": "U 1", "u2": None, "u3": "U 3"}, True,
                          lambda d, t: seen.append((d, t)))
        assert sorted(res.added) == ["u1", "u2", "u3"] and seen == [(1, 3), (2, 3), (3, 3)]
        seen.clear()
        res = transaction(conn, sync_directory_users, {"u1": "U 1"}, True, lambda d, t: seen.append((d, t)))
        assert res.removed == ["u2", "u3"] and seen == [(1, 3), (2, 3), (3, 3)]
    finally:
        conn.close()
