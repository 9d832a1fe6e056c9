"""``make demo``: initialise a demo directory (once), start everything, print where to look."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from cc.config import load_config
from cc.jwtauth import load_private_key, sign_token
from supervisor._init import init_directory


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start the demo installation (created on first use).")
    ap.add_argument("--dir", default="demo")
    args = ap.parse_args(argv)
    target = Path(args.dir).resolve()
    if not (target / "config.json").exists():
        init_directory(target, ["demo"], "127.0.0.1:8080", "127.0.0.1:8082", memory_cap_gb=2.0)
        print(f"initialised {target}")
    else:
        print(f"reusing {target}")
    cfg = load_config(target / "config.json")
    token = sign_token(load_private_key(cfg.secret("JWT_PRIVATE_KEY")), "demo", ["admin", "api"],
                       cfg.jwt_max_age or 2000 * 3600)
    (target / "demo.jwt").write_text(token + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "--config", str(cfg.path)], cwd=target)
    ports = cfg.run_dir / "ports.json"
    for _ in range(200):
        if ports.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        return proc.returncode or 1
    addrs = orjson.loads(ports.read_bytes())
    web, ingest = addrs["web"], addrs["ingest"]
    print(f"""
ClusterCockpit (Python) demo is running.
  web/API:  http://{web}
  ingest:   http://{ingest}/api/write
  API token (user demo, roles admin+api) saved in {target / 'demo.jwt'}

  Write a point:
    curl -H "Authorization: Bearer $(cat {target / 'demo.jwt'})" \\
      --data-binary "cpu_load,cluster=demo,hostname=node01,type=node value=1.5 $(date +%s)" \\
      "http://{ingest}/api/write"
  Query it:
    curl -H "Authorization: Bearer $(cat {target / 'demo.jwt'})" -X POST \\
      -d '{{"cluster":"demo","from":'$(($(date +%s)-600))',"to":'$(date +%s)',"queries":[{{"metric":"cpu_load","host":"node01"}}]}}' \\
      "http://{web}/api/query"
  Status:   cd {target} && cc-supervise status     (or: {sys.executable} -m supervisor status)
Press Ctrl-C to stop.
""", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
