"""Which handler does each kind of action (``Action.kind``)."""

from __future__ import annotations

from .base import Handler
from .dom0 import CheckHost, CheckNoSwap, InventoryHost
from .domains import SetMemory, ShutdownVM, StartVM
from .drill import CheckClone, CloneGroup, DeleteSnapshot, DestroyDrillDomain, StartDrillVM, VerifyDrillGone
from .storage import CheckGroup, DemoteGroup, FailoverGroup, IntegrityCheck, ReverseGroup, WaitConsistent
from .verify import FunctionalCheckHandler

HANDLERS: dict[str, Handler] = {
    "check_host": CheckHost(),
    "check_group": CheckGroup(),
    "inventory_host": InventoryHost(),
    "failover_group": FailoverGroup(),
    "integrity_check": IntegrityCheck(),
    "set_memory": SetMemory(),
    "start_vm": StartVM(),
    "check_no_swap": CheckNoSwap(),
    "functional_check": FunctionalCheckHandler(),
}


HANDLERS.update(
    {
        "clone_group": CloneGroup(),
        "check_clone": CheckClone(),
        "start_drill_vm": StartDrillVM(),
        "destroy_drill_domain": DestroyDrillDomain(),
        "delete_snapshot": DeleteSnapshot(),
        "verify_drill_gone": VerifyDrillGone(),
        "reverse_group": ReverseGroup(),
        "wait_consistent": WaitConsistent(),
        "demote_group": DemoteGroup(),
        "shutdown_vm": ShutdownVM(),
    }
)
