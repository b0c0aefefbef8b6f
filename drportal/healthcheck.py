"""The containers' health checks: ``python -m drportal.healthcheck web|worker|beat|lab``.

Exit 0 when healthy, 1 with the reason on stderr otherwise (Docker shows the last lines
in ``docker inspect``). Each check asks the process itself, not just whether it exists:

web     GET /healthz over HTTP on 127.0.0.1:$PORT (default 8000), with a Host header from
        ALLOWED_HOSTS, answered "ok".
worker  a Celery ping to this container's worker (celery@<hostname>) through the broker.
beat    the beat schedule file (--schedule) written in the last DRPORTAL_BEAT_STALE_S
        seconds (default 600; beat writes it every 3 minutes while it sends tasks).
lab     the lab's SSH port answers on one of the addresses it serves (server.json in
        DRPORTAL_LAB_DIR); a host faulted "down" on purpose does not make the lab unhealthy.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path

BEAT_SCHEDULE = "/data/beat/celerybeat-schedule"


class Unhealthy(Exception):
    pass


def host_header(allowed_hosts: str) -> str:
    """A Host header that ALLOWED_HOSTS accepts: its first entry ('.example.org' and '*'
    patterns made concrete)."""
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if not entry:
            continue
        if entry == "*":
            return "localhost"
        return entry.lstrip(".")
    return "localhost"


def check_web(port: int, allowed_hosts: str, timeout: float = 5) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz", headers={"Host": host_header(allowed_hosts)})
        response = conn.getresponse()
        body = response.read(100).decode("utf-8", "replace")
    except OSError as exc:
        raise Unhealthy(f"web: no answer on 127.0.0.1:{port}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200 or body.strip() != "ok":
        raise Unhealthy(f"web: /healthz answered {response.status} {body[:60]!r}, expected 200 'ok'")
    return "web: ok"


def check_worker(hostname: str, timeout: float = 5) -> str:
    from drportal.celery import app

    node = f"celery@{hostname}"
    try:
        replies = app.control.ping(destination=[node], timeout=timeout)
    except Exception as exc:  # the broker's errors are many; any of them means unhealthy
        raise Unhealthy(f"worker: cannot reach the broker: {exc}") from exc
    if not any(node in reply for reply in replies):
        raise Unhealthy(f"worker: {node} did not answer a ping within {timeout:g} s")
    return f"worker: {node} answered"


def check_beat(schedule: str, stale_after: float, now: float | None = None) -> str:
    files = glob.glob(glob.escape(schedule) + "*")
    if not files:
        raise Unhealthy(f"beat: no schedule file {schedule}* yet")
    newest = max(os.path.getmtime(path) for path in files)
    age = (time.time() if now is None else now) - newest
    if age > stale_after:
        raise Unhealthy(f"beat: schedule {schedule} last written {age:.0f} s ago (limit {stale_after:g} s)")
    return f"beat: schedule written {age:.0f} s ago"


def check_lab(lab_dir: str, timeout: float = 3) -> str:
    try:
        info = json.loads((Path(lab_dir) / "server.json").read_text(encoding="utf-8"))
        port, addresses = int(info["port"]), sorted(set(info["hosts"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unhealthy(f"lab: no readable {lab_dir}/server.json yet ({exc})") from exc
    for address in addresses:
        try:
            socket.create_connection((address, port), timeout).close()
        except OSError:
            continue
        return f"lab: SSH answers on {address}:{port}"
    raise Unhealthy(f"lab: nothing answers on port {port} at {', '.join(addresses) or 'no address'}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in {"web", "worker", "beat", "lab"}:
        print("usage: python -m drportal.healthcheck web|worker|beat|lab", file=sys.stderr)
        return 2
    try:
        if args[0] == "web":
            message = check_web(int(os.environ.get("PORT", "8000")), os.environ.get("ALLOWED_HOSTS", ""))
        elif args[0] == "worker":
            message = check_worker(socket.gethostname())
        elif args[0] == "lab":
            message = check_lab(os.environ.get("DRPORTAL_LAB_DIR", "var/lab"))
        else:
            message = check_beat(
                os.environ.get("DRPORTAL_BEAT_SCHEDULE", BEAT_SCHEDULE),
                float(os.environ.get("DRPORTAL_BEAT_STALE_S", "600")),
            )
    except Unhealthy as exc:
        print(exc, file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
