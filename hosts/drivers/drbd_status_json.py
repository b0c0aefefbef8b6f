"""Reading ``drbdsetup status --json`` (drbd-utils >= 8.9.8 with a DRBD 9 kernel) into the
records of drbd_status.py.

Written from drbd-utils 9.22.0 user/v9/drbdsetup.c (v9:LINE): peer_device_status_json
2600-2716, connection_status_json 2718-2753, device_status_json 2755-2792,
resource_status_json 2794-2838, status_cmd 3215-3268. drbd-utils older than 9.21.0 lack
the ``suspended-*`` fields (commit 367b6f9c); newer ones add ``open``, ``tls`` and
``paths`` (ignored here); 8.4's drbdsetup has no ``--json`` at all (user/v84/drbdsetup.c:
286-291). A value this module cannot use raises StatusUnreadable naming the host, the
command, the line (drbdsetup prints one ``"key": value`` per line) and what was expected.
"""

from __future__ import annotations

import json

from hosts.drivers.drbd_status import (
    CONNECTION_STATES,
    DISK_STATES,
    REPLICATION_STATES,
    RESYNC_SUSPEND_REASONS,
    ROLES,
    SUSPEND_REASONS,
    DrbdPeer,
    DrbdPeerVolume,
    DrbdResource,
    DrbdVolume,
    StatusUnreadable,
)


class _JsonReader:
    def __init__(self, text: str, host: str, command: str) -> None:
        self.text, self.host, self.command = text, host, command

    def fail(self, path: str, key: str, value: object, expected: str) -> StatusUnreadable:
        # drbdsetup prints one "key": value per line (v9:2617-2838): name the line it is on.
        needle = f'"{key}": {json.dumps(value)}' if key else None
        for number, line in enumerate(self.text.splitlines(), start=1):
            if needle and needle in line:
                return StatusUnreadable(self.host, self.command, number, line, f"{path}: {expected}")
        return StatusUnreadable(self.host, self.command, None, f"at {path}", expected)

    def get(self, obj: dict, path: str, key: str, kind: type | tuple[type, ...], *, required: bool = True):
        if key not in obj:
            if required:
                raise StatusUnreadable(self.host, self.command, None, f"at {path}", f'a "{key}" field')
            return None
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{path}.{key}", key, value, f"a {_kind_name(kind)}")
        return value

    def objects(self, obj: dict, path: str, key: str, what: str) -> list[tuple[str, dict]]:
        """The objects of the list ``obj[key]``, each with its path."""
        out = []
        for i, item in enumerate(self.get(obj, path, key, list)):
            if not isinstance(item, dict):
                raise StatusUnreadable(
                    self.host, self.command, None, f"at {path}.{key}[{i}]", f"a {what} object"
                )
            out.append((f"{path}.{key}[{i}]", item))
        return out

    def word(self, obj: dict, path: str, key: str, allowed: tuple[str, ...]) -> str:
        value = self.get(obj, path, key, str)
        if value not in allowed:
            raise self.fail(f"{path}.{key}", key, value, f"one of {', '.join(allowed)}")
        return value

    def reasons(self, obj: dict, path: str, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(obj, path, key, str, required=False)
        if value in (None, "no"):
            return ()
        parts = tuple(value.split(","))
        if any(p not in allowed for p in parts):
            raise self.fail(f"{path}.{key}", key, value, f"no, or a comma list of {', '.join(allowed)}")
        return parts


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        int: "number",
        float: "number",
        str: "string",
        bool: "true or false",
        list: "list",
        dict: "object",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def parse_status_json(
    text: str, *, host: str = "?", command: str = "drbdsetup status --json"
) -> dict[str, DrbdResource]:
    """Parse ``drbdsetup status --json`` (drbd-utils >= 8.9.8 with DRBD 9)."""
    reader = _JsonReader(text, host, command)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines()
        shown = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else text[-60:]
        raise StatusUnreadable(host, command, exc.lineno, shown, f"complete JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise StatusUnreadable(
            host, command, 1, text.splitlines()[0] if text else "", "a JSON list of resources"
        )
    out: dict[str, DrbdResource] = {}
    for i, res in enumerate(data):
        path = f"[{i}]"
        if not isinstance(res, dict):
            raise StatusUnreadable(host, command, None, f"at {path}", "a resource object")
        resource = _resource_from_json(reader, res, path)
        out[resource.name] = resource
    return out


def _resource_from_json(r: _JsonReader, res: dict, path: str) -> DrbdResource:
    name = r.get(res, path, "name", str)
    suspended: tuple[str, ...] = tuple(
        reason for reason in SUSPEND_REASONS if r.get(res, path, f"suspended-{reason}", bool, required=False)
    )
    if r.get(res, path, "suspended", bool) and not suspended:
        suspended = ("unknown",)  # drbd-utils < 9.21 say only that, not why
    volumes = []
    for p, dev in r.objects(res, path, "devices", "device"):
        volumes.append(
            DrbdVolume(
                volume=r.get(dev, p, "volume", int),
                minor=r.get(dev, p, "minor", int),
                disk=r.word(dev, p, "disk-state", DISK_STATES),
                client="yes" if r.get(dev, p, "client", bool) else "no",
                quorum=r.get(dev, p, "quorum", bool),
                size_kib=r.get(dev, p, "size", int, required=False),
            )
        )
    peers = []
    for p, conn in r.objects(res, path, "connections", "connection"):
        peer_volumes = []
        for q, pd in r.objects(conn, p, "peer_devices", "peer device"):
            done = r.get(pd, q, "percent-resync-done", (int, float), required=False)
            eta = r.get(pd, q, "estimated-seconds-to-finish", (int, float), required=False)
            peer_volumes.append(
                DrbdPeerVolume(
                    volume=r.get(pd, q, "volume", int),
                    replication=r.word(pd, q, "replication-state", REPLICATION_STATES),
                    peer_disk=r.word(pd, q, "peer-disk-state", DISK_STATES),
                    peer_client="yes" if r.get(pd, q, "peer-client", bool) else "no",
                    done=None if done is None else float(done),
                    resync_suspended=r.reasons(pd, q, "resync-suspended", RESYNC_SUSPEND_REASONS),
                    out_of_sync_kib=r.get(pd, q, "out-of-sync", int),
                    # v9:2699: 987654321 stands for "no estimate yet"
                    eta_seconds=None if eta in (None, 987654321) else float(eta),
                )
            )
        peers.append(
            DrbdPeer(
                name=r.get(conn, p, "name", str),
                node_id=r.get(conn, p, "peer-node-id", int),
                connection=r.word(conn, p, "connection-state", CONNECTION_STATES),
                role=r.word(conn, p, "peer-role", ROLES),
                congested=r.get(conn, p, "congested", bool),
                volumes=tuple(peer_volumes),
            )
        )
    return DrbdResource(
        name=name,
        role=r.word(res, path, "role", ROLES),
        volumes=tuple(volumes),
        peers=tuple(peers),
        suspended=suspended,
        node_id=r.get(res, path, "node-id", int),
        force_io_failures=r.get(res, path, "force-io-failures", bool, required=False),
    )
