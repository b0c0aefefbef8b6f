"""A drill's work: snapshot a replica and present the clone, start the clone as
``drill-<vm>`` on the isolated bridge, and its cleanup (destroy the clones, delete the
snapshots, prove nothing is left). These handlers touch drill domains and drill
snapshots only, never production."""

from __future__ import annotations

from hosts.connect import ssh_target

from .base import (
    ActionFailed,
    Context,
    Handler,
    Observation,
    Outcome,
    confirm,
    create_and_confirm,
    observe_running,
)

# A drill's domains and snapshots are named so (drill-<vm>, drill-<stamp>-<group>): the
# plan names them (runs.drill), and these handlers refuse to touch anything else.
DRILL_PREFIX = "drill-"


def drill_domain(vm: str) -> str:
    return f"{DRILL_PREFIX}{vm}"


def _drill_domain_guard(name: str) -> str:
    """Drill handlers act on drill domains only: never on a production domain."""
    if not name.startswith(DRILL_PREFIX):
        raise ActionFailed(
            f"refusing to touch {name}: not a drill domain (they are named {DRILL_PREFIX}<vm>)"
        )
    return name


class CloneGroup(Handler):
    """Snapshot the replica of a DR group on the surviving array and present the
    snapshot to the surviving dom0. The group itself is not touched."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        snap = ctx.storage(ctx.params["array"]).snapshot_status(ctx.params["snapshot"])
        if snap is None:
            return Observation(False, f"no snapshot {ctx.params['snapshot']} yet")
        host = ctx.params.get("present_to")
        return Observation(
            not host or host in snap.presented_to,
            f"snapshot {snap.name} of {snap.group}: {len(snap.devices)} device(s), presented to "
            f"{', '.join(snap.presented_to) or 'nobody'}",
            {"devices": dict(snap.devices)},
        )

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        driver = ctx.storage(p["array"])
        snap = driver.snapshot(p["group"], p["snapshot"])
        if p.get("present_to") and p["present_to"] not in snap.presented_to:
            snap = driver.present_snapshot(p["snapshot"], p["present_to"])
        return Outcome(
            f"snapshot {snap.name} of {snap.group} presented to {', '.join(snap.presented_to) or 'nobody'}: "
            + ", ".join(f"{src} -> {dst}" for src, dst in sorted(snap.devices.items())),
            {"devices": dict(snap.devices), "presented_to": list(snap.presented_to)},
            undo={
                "kind": "delete_snapshot",
                "snapshot": p["snapshot"],
                "array": p["array"],
                "hosts": [p["present_to"]] if p.get("present_to") else [],
            },
        )


class CheckClone(Handler):
    """The surviving dom0 sees every device of the snapshot as a block device."""

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        snap = ctx.storage(p["array"]).snapshot_status(p["snapshot"])
        if snap is None:
            raise ActionFailed(f"snapshot {p['snapshot']} is gone from {p['array']}")
        missing = [
            dev for src, dev in sorted(snap.devices.items()) if src not in p.get("devices", snap.devices)
        ]
        if missing:
            raise ActionFailed(
                f"snapshot {snap.name} holds devices not of {p['group']}: {', '.join(missing)}"
            )
        host = p.get("present_to")
        if not host:
            return Outcome(f"snapshot {snap.name}: nothing to start from it", {})
        conn = ctx.conn(ssh_target(ctx.host(host)))
        absent = [
            dev for dev in sorted(snap.devices.values()) if conn.run(["test", "-b", dev]).exit_status != 0
        ]
        if absent:
            raise ActionFailed(f"{host} does not see the clone device(s) {', '.join(absent)}")
        return Outcome(
            f"{host} sees the {len(snap.devices)} clone device(s) of {snap.group}", {"devices": snap.devices}
        )


class StartDrillVM(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        return observe_running(ctx, _drill_domain_guard(ctx.params["domain"]))

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        name = _drill_domain_guard(p["domain"])
        snap = ctx.storage(p["array"]).snapshot_status(p["snapshot"])
        if snap is None:
            raise ActionFailed(f"snapshot {p['snapshot']} is gone from {p['array']}: nothing to start from")
        disks = []
        for target, vdev, mode in p["disks"]:
            if target not in snap.devices:
                raise ActionFailed(f"snapshot {snap.name} has no copy of {p['vm']}'s disk {target}")
            disks.append((snap.devices[target], vdev, mode))
        earlier = create_and_confirm(
            ctx,
            self,
            name,
            lambda: ctx.xen(ctx.action.host).create_clone(
                p["config_path"],
                name=name,
                memory_mb=p["memory_mb"],
                disks=disks,
                vifs=[tuple(v) for v in p["vifs"]],
            ),
        )
        if earlier:
            return earlier
        return Outcome(
            f"started {name} (a clone of {p['vm']}) on {ctx.action.host} with {p['memory_mb']} MB on "
            f"{', '.join(sorted({b for _m, b in p['vifs']}))}, disks {', '.join(d for d, _v, _m in disks)}",
            {"memory_mb": p["memory_mb"], "disks": [d for d, _v, _m in disks]},
            undo={"kind": "destroy_domain", "domain": name, "host": ctx.action.host},
        )


class DestroyDrillDomain(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name = _drill_domain_guard(ctx.params["domain"])
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None:
            return Observation(True, f"{name} is not on {ctx.action.host}")
        return Observation(False, f"{name} is on {ctx.action.host} ({domain.state})")

    def act(self, ctx: Context) -> Outcome:
        name = _drill_domain_guard(ctx.params["domain"])
        xen = ctx.xen(ctx.action.host)
        if not self.observe(ctx).done:
            xen.destroy(name)
        after = confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"xl destroy returned, but {after.detail}")
        return Outcome(f"destroyed {name} on {ctx.action.host}")


class DeleteSnapshot(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        snap = ctx.storage(ctx.params["array"]).snapshot_status(ctx.params["snapshot"])
        if snap is None:
            return Observation(True, f"no snapshot {ctx.params['snapshot']} on {ctx.params['array']}")
        return Observation(
            False, f"snapshot {snap.name} is presented to {', '.join(snap.presented_to) or 'nobody'}"
        )

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        driver = ctx.storage(p["array"])
        snap = driver.snapshot_status(p["snapshot"])
        if snap is not None:
            if not snap.name.startswith(DRILL_PREFIX):
                raise ActionFailed(f"refusing to delete {snap.name}: not a drill snapshot")
            for host in snap.presented_to:
                driver.unpresent_snapshot(snap.name, host)
            driver.delete_snapshot(snap.name)
        after = self.observe(ctx)
        if not after.done:
            raise ActionFailed(f"delete sent, but {after.detail}")
        return Outcome(f"snapshot {p['snapshot']} unpresented and deleted on {p['array']}")


class VerifyDrillGone(Handler):
    """Read-only: no drill domain on the dom0, no snapshot of this drill on the array."""

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        if "host" in p:
            left = [d.name for d in ctx.xen(p["host"]).list_domains() if d.name.startswith(DRILL_PREFIX)]
            if left:
                raise ActionFailed(f"drill domain(s) still on {p['host']}: {', '.join(left)}")
            return Outcome(f"no drill domain on {p['host']}")
        present = set(ctx.storage(p["array"]).list_snapshots())
        left = sorted(present & set(p.get("snapshots", ())))
        if left:
            raise ActionFailed(f"snapshot(s) of the drill still on {p['array']}: {', '.join(left)}")
        return Outcome(f"no snapshot of the drill on {p['array']}")
