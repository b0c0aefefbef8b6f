"""The blocks every kind of run plans alike, so each kind is a page of its own decisions:
the preflight and no-swap checks of the dom0s, the inventory, a VM's functional checks,
setting memory, starting and shutting down a VM, a DR group's failover, final sync and
demote, and the order of the starts.

Each block returns the PlannedActions of one piece of work with the keys, targets and
parameters the engine's handlers expect (``failover.actions``); the builders choose
which blocks, for what, in which step and tier.
"""

from __future__ import annotations

from collections.abc import Iterable

from failover.actions.drill import drill_domain
from failover.choices import ActionKindChoices as K
from failover.choices import FailoverStep as F
from hosts.models import VM, DRGroup, Host
from hosts.selectors import prefetched

from .plan import Plan, PlannedAction
from .survey import Survey, target_array

# -- the dom0s ----------------------------------------------------------------------------------


def host_checks(hosts: Iterable[Host], *, step: int = F.PREFLIGHT) -> list[PlannedAction]:
    """Thesis table 3.4: every dom0 answers (its RAM, free memory, CPUs, Xen version)."""
    return [
        PlannedAction(key=f"preflight:{h.name}", step=step, kind=K.CHECK_HOST, target=h.name, host=h.name)
        for h in hosts
    ]


def inventory(hosts: Iterable[Host]) -> list[PlannedAction]:
    """Step 1: which VMs already run on each dom0 of the surviving site."""
    return [
        PlannedAction(
            key=f"inventory:{h.name}", step=F.INVENTORY, kind=K.INVENTORY_HOST, target=h.name, host=h.name
        )
        for h in hosts
    ]


def noswap_checks(hosts: Iterable[Host], *, step: int = F.VERIFY) -> list[PlannedAction]:
    """Every dom0 holds its domains in RAM: nothing swaps."""
    return [
        PlannedAction(
            key=f"verify:noswap:{h.name}", step=step, kind=K.CHECK_NO_SWAP, target=h.name, host=h.name
        )
        for h in hosts
    ]


def dom0_shrinks(sv: Survey, plan: Plan, *, always: bool) -> list[PlannedAction]:
    """Step 4 for the dom0s of the surviving site: their disaster memory (the change is
    listed in the plan); ``always``: an action even when it is there already (it
    confirms), else only where it changes."""
    actions = []
    for host in sv.target_hosts:
        target = sv.scenario.dom0_memory.get(host.name)
        current = sv.look.dom0.get(host.name)
        if not target:
            continue
        if current is not None and current != target:
            plan.memory_changes.append(
                {"vm": "Domain-0", "host": host.name, "from_mb": current, "to_mb": target}
            )
        elif not always:
            continue
        actions.append(
            set_memory(
                key=f"shrink:Domain-0@{host.name}",
                vm="Domain-0",
                target=f"Domain-0 on {host.name}",
                host=host.name,
                memory_mb=target,
            )
        )
    return actions


# -- domains ------------------------------------------------------------------------------------


def set_memory(
    *,
    key: str,
    vm: str,
    host: str,
    memory_mb: int | None,
    step: int = F.SHRINK,
    target: str = "",
    params: dict | None = None,
) -> PlannedAction:
    """``xl mem-set`` of a running domain (a VM, or ``Domain-0``) on ``host``."""
    return PlannedAction(
        key=key,
        step=step,
        kind=K.SET_MEMORY,
        target=target or vm,
        host=host,
        params={"vm": vm, "memory_mb": memory_mb, **(params or {})},
    )


def start_params(vm: VM, memory_mb: int) -> dict:
    """What every start of ``vm`` needs: its config file, memory, tier and the VMs it
    depends on (``order_starts`` makes those edges)."""
    return {
        "vm": vm.name,
        "config_path": vm.config_path,
        "memory_mb": memory_mb,
        "tier": vm.tier,
        "depends_on_vms": sorted(d.name for d in prefetched(vm, "depends_on")),
    }


def start_vm(
    vm: VM, *, host: str, memory_mb: int, step: int = F.START, depends_on: list[str] | None = None
) -> PlannedAction:
    """``xl create`` of ``vm`` on ``host`` with ``memory_mb``."""
    return PlannedAction(
        key=f"start:{vm.name}",
        step=step,
        kind=K.START_VM,
        target=vm.name,
        host=host,
        params=start_params(vm, memory_mb),
        depends_on=depends_on or [],
    )


def shutdown_vm(vm: str, *, host: str, tier: int, step: int) -> PlannedAction:
    """``xl shutdown -w`` of ``vm`` on ``host`` (a VM that does not stop is left to a person)."""
    return PlannedAction(
        key=f"shutdown:{vm}",
        step=step,
        kind=K.SHUTDOWN_VM,
        target=vm,
        host=host,
        params={"vm": vm, "tier": tier},
    )


def functional_checks(vm: VM, host: str, *, after: str, drill: bool = False) -> list[PlannedAction]:
    """Thesis tables 3.1/3.2: every check of ``vm`` (of its drill clone, at its drill
    address, for a drill) once ``after`` is done. A failed check is recorded; the run
    goes on."""
    shown = drill_domain(vm.name) if drill else vm.name
    return [
        PlannedAction(
            key=f"verify:{vm.name}:{check.pk}",
            step=F.VERIFY,
            kind=K.FUNCTIONAL_CHECK,
            target=f"{shown}: {check.name}",
            host=host,
            params={
                "vm": vm.name,
                "check_id": check.pk,
                "check": check.name,
                **({"drill": True} if drill else {}),
            },
            depends_on=[after],
            optional=True,
        )
        for check in prefetched(vm, "checks")
    ]


# -- DR groups ----------------------------------------------------------------------------------


def group_devices(group: DRGroup) -> list[str]:
    """The block devices of the group's VMs, as a dom0 that sees the group shows them."""
    return sorted(d.target for vm in prefetched(group, "vms") for d in prefetched(vm, "disks"))


def group_checks(groups: Iterable[DRGroup]) -> list[PlannedAction]:
    """Preflight: each group's replica at the surviving array is consistent."""
    actions = []
    for group in groups:
        array = target_array(group).name
        actions.append(
            PlannedAction(
                key=f"preflight:{group.name}",
                step=F.PREFLIGHT,
                kind=K.CHECK_GROUP,
                target=group.name,
                host=array,
                params={"group": group.name, "array": array},
            )
        )
    return actions


def group_failover(
    group: str, *, array: str, source_array: str, present_to: str | None, tier: int, step: int = F.STORAGE
) -> PlannedAction:
    """Make ``array``'s copy of ``group`` the primary (only once the source is fenced or
    demoted) and present it to ``present_to``."""
    return PlannedAction(
        key=f"storage:{group}",
        step=step,
        kind=K.FAILOVER_GROUP,
        target=group,
        host=array,
        params={
            "group": group,
            "array": array,
            "source_array": source_array,
            "present_to": present_to,
            "tier": tier,
        },
    )


def final_sync_and_demote(
    group: str, *, array: str, source_array: str, step: int, tier: int
) -> list[PlannedAction]:
    """At ``array``, the current source: wait until the mirror is consistent (tier), then
    demote the group there (tier + 1), so the other side can take over without split brain."""
    common = {"group": group, "array": array, "source_array": source_array}
    return [
        PlannedAction(
            key=f"finalsync:{group}",
            step=step,
            kind=K.WAIT_CONSISTENT,
            target=group,
            host=array,
            params={**common, "tier": tier},
        ),
        PlannedAction(
            key=f"demote:{group}",
            step=step,
            kind=K.DEMOTE_GROUP,
            target=group,
            host=array,
            params={**common, "tier": tier + 1},
        ),
    ]


# -- order ----------------------------------------------------------------------------------------


def order_starts(actions: list[PlannedAction]) -> list[PlannedAction]:
    """Starts go after the VMs they depend on (explicit edges); tiers are ordered by the
    engine (a lower tier of a step finishes before a higher one starts), which needs no
    edges, so a plan of n starts does not carry n² of them."""
    starts = {a.params["vm"]: a for a in actions if a.kind == K.START_VM}
    for action in starts.values():
        for vm in action.params["depends_on_vms"]:
            if vm in starts:
                action.depends_on.append(starts[vm].key)
    return sorted(actions, key=lambda a: (a.step, a.params.get("tier", 0), a.key))
