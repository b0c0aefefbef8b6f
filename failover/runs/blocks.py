"""The blocks several kinds of run plan alike: the functional checks of a VM, the dom0s'
disaster memory, the order of the starts."""

from __future__ import annotations

from hosts.models import VM

from .plan import Plan, PlannedAction
from .survey import Survey


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
            PlannedAction(
                f"shrink:Domain-0@{host.name}",
                4,
                "set_memory",
                f"Domain-0 on {host.name}",
                host.name,
                {"vm": "Domain-0", "memory_mb": target},
            )
        )
    return actions


def check_actions(vm: VM, host_name: str, *, after: str) -> list[PlannedAction]:
    """Step 6, thesis tables 3.1/3.2: every check of every VM at the surviving site, those
    that ran there already included. A failed check is recorded; the run goes on."""
    return [
        PlannedAction(
            f"verify:{vm.name}:{check.pk}",
            6,
            "functional_check",
            f"{vm.name}: {check.name}",
            host_name,
            {"vm": vm.name, "check_id": check.pk, "check": check.name},
            [after],
            optional=True,
        )
        for check in vm.checks.all()
    ]


def order_starts(actions: list[PlannedAction]) -> list[PlannedAction]:
    """Starts go after the VMs they depend on (explicit edges); tiers are ordered by the
    engine (a lower tier of a step finishes before a higher one starts), which needs no
    edges, so a plan of n starts does not carry n² of them."""
    starts = {a.params["vm"]: a for a in actions if a.kind == "start_vm"}
    for action in starts.values():
        for vm in action.params["depends_on_vms"]:
            if vm in starts:
                action.depends_on.append(starts[vm].key)
    return sorted(actions, key=lambda a: (a.step, a.params.get("tier", 0), a.key))
