"""Which handler does each kind of action: ``Action.kind`` -> handler, and its label.

The kinds themselves, with their labels, are ``choices.ActionKindChoices`` (the field's
choices: a leaf every layer may read, the models included). This table gives each of
them its handler, and refuses to load if a kind has none or a handler has no kind, so a
new kind is declared in both places or the workers do not start.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from failover.choices import ActionKindChoices as K

from .base import Handler
from .dom0 import CheckHost, CheckNoSwap, InventoryHost
from .domains import SetMemory, ShutdownVM, StartVM
from .drill import CheckClone, CloneGroup, DeleteSnapshot, DestroyDrillDomain, StartDrillVM, VerifyDrillGone
from .storage import CheckGroup, DemoteGroup, FailoverGroup, IntegrityCheck, ReverseGroup, WaitConsistent
from .verify import FunctionalCheckHandler

HANDLERS: dict[str, Handler] = {
    # failover (and failback, planned migration)
    K.CHECK_HOST: CheckHost(),
    K.CHECK_GROUP: CheckGroup(),
    K.INVENTORY_HOST: InventoryHost(),
    K.FAILOVER_GROUP: FailoverGroup(),
    K.INTEGRITY_CHECK: IntegrityCheck(),
    K.SET_MEMORY: SetMemory(),
    K.START_VM: StartVM(),
    K.CHECK_NO_SWAP: CheckNoSwap(),
    K.FUNCTIONAL_CHECK: FunctionalCheckHandler(),
    K.REVERSE_GROUP: ReverseGroup(),
    K.WAIT_CONSISTENT: WaitConsistent(),
    K.DEMOTE_GROUP: DemoteGroup(),
    K.SHUTDOWN_VM: ShutdownVM(),
    # drills and their cleanup
    K.CLONE_GROUP: CloneGroup(),
    K.CHECK_CLONE: CheckClone(),
    K.START_DRILL_VM: StartDrillVM(),
    K.DESTROY_DRILL_DOMAIN: DestroyDrillDomain(),
    K.DELETE_SNAPSHOT: DeleteSnapshot(),
    K.VERIFY_DRILL_GONE: VerifyDrillGone(),
}


def check_complete(handlers: dict[str, Handler]) -> None:
    """Every kind has a handler, every handler a kind."""
    without_handler = sorted(set(K.values) - set(handlers))
    without_kind = sorted(set(handlers) - set(K.values))
    if without_handler or without_kind:
        raise ImproperlyConfigured(
            "failover.actions.registry: "
            + "; ".join(
                part
                for part in (
                    without_handler and f"kinds without a handler: {', '.join(without_handler)}",
                    without_kind and f"handlers of no ActionKindChoices kind: {', '.join(without_kind)}",
                )
                if part
            )
        )


check_complete(HANDLERS)
