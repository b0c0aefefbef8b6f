"""Thesis table 1 (disaster classes) and table 2 (decision criteria), and run states."""

from __future__ import annotations

from enum import IntEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class DisasterClassChoices(models.IntegerChoices):
    CATASTROPHE = 1, _("1 – Catastrophe: all data centres, all WAN/SAN/LAN links or all power/cooling gone")
    EMERGENCY = 2, _("2 – Emergency: one data centre, telecom, backup or vault room, or one supply of one DC")
    FAILURE = 3, _("3 – Failure: one hardware system or component")


class EventCategoryChoices(models.TextChoices):
    SYSTEMS_DOWN = "systems-down", _("Total failure of the in-scope systems")
    POWER = "power", _("Power and generator failure")
    DC_INACCESSIBLE = (
        "dc-inaccessible",
        _("Data centre not accessible (fire, flood, contamination, extinguishing)"),
    )
    NETWORK = "network", _("Network failure")
    COOLING = "cooling", _("Cooling failure (about 2 h)")
    FORCE_MAJEURE = "force-majeure", _("Force majeure")
    DELIBERATE = "deliberate", _("Deliberate acts (terror, sabotage, hackers, viruses)")
    ORGANISATIONAL = "organisational", _("Organisational failure")
    HUMAN_ERROR = "human-error", _("Human error")


class RunKindChoices(models.TextChoices):
    FAILOVER = "failover", _("Failover")
    DRILL = "drill", _("Drill")
    FAILBACK = "failback", _("Failback")
    CLEANUP = "cleanup", _("Drill cleanup")
    MIGRATION = "migration", _("Planned migration")


class ReportExclusionChoices(models.TextChoices):
    """Whether a run counts in the reports' figures (issue 17 item 6)."""

    COUNTED = "", _("counted")
    EXERCISE = "exercise", _("an exercise")
    BAD_DATA = "bad-data", _("bad data")


class RunModeChoices(models.TextChoices):
    DISASTER = "disaster", _("Disaster (source site lost)")
    PLANNED = "planned", _("Planned (source site up)")


class RunStateChoices(models.TextChoices):
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    WAITING = "waiting", _("Waiting for a person")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    ABORTED = "aborted", _("Aborted")

    @classmethod
    def active(cls) -> tuple[str, ...]:
        return (cls.RUNNING, cls.PAUSED, cls.WAITING)


class StepStateChoices(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    STOPPED = "stopped", _("Stopped by the abort")


class ActionStateChoices(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Done")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")
    MANUAL = "manual", _("Waiting for a person")
    ATTENTION = "attention", _("Needs attention")

    @classmethod
    def finished_ok(cls) -> tuple[str, ...]:
        return (cls.SUCCEEDED, cls.SKIPPED)


class ActionKindChoices(models.TextChoices):
    """What an action does, and its label on the board and in the reports. Every kind has
    its handler in ``failover.actions.registry``, which refuses to load otherwise."""

    CHECK_HOST = "check_host", _("Check the dom0")
    CHECK_GROUP = "check_group", _("Check the DR group")
    INVENTORY_HOST = "inventory_host", _("List running VMs")
    FAILOVER_GROUP = "failover_group", _("Fail the DR group over")
    INTEGRITY_CHECK = "integrity_check", _("Check the data")
    SET_MEMORY = "set_memory", _("Set memory")
    START_VM = "start_vm", _("Start the VM")
    CHECK_NO_SWAP = "check_no_swap", _("Check: no swapping")
    FUNCTIONAL_CHECK = "functional_check", _("Functional test")
    CLONE_GROUP = "clone_group", _("Snapshot the replica and present the clone")
    CHECK_CLONE = "check_clone", _("Check the clone devices")
    START_DRILL_VM = "start_drill_vm", _("Start the drill clone")
    DESTROY_DRILL_DOMAIN = "destroy_drill_domain", _("Destroy the drill clone")
    DELETE_SNAPSHOT = "delete_snapshot", _("Delete the snapshot")
    VERIFY_DRILL_GONE = "verify_drill_gone", _("Check: nothing of the drill left")
    REVERSE_GROUP = "reverse_group", _("Reverse replication")
    WAIT_CONSISTENT = "wait_consistent", _("Wait until the mirror is consistent")
    DEMOTE_GROUP = "demote_group", _("Demote the DR group at the source")
    SHUTDOWN_VM = "shutdown_vm", _("Shut the VM down")


class CheckOutcomeChoices(models.TextChoices):
    OK = "ok", _("ok")
    DOWN = "down", _("down")
    NOTE = "note", _("note")


# The steps of each kind of run by name (a plan's actions name their step so); the tables
# below give each its number, key, name and planned minutes, in the same order.
class FailoverStep(IntEnum):
    """A failover's, a drill's and a planned migration's steps."""

    PREFLIGHT = 0
    INVENTORY = 1
    STORAGE = 2
    INTEGRITY = 3
    SHRINK = 4
    START = 5
    VERIFY = 6


class CleanupStep(IntEnum):
    STOP = 0
    MEMORY = 1
    STORAGE = 2
    VERIFY = 3


class FailbackStep(IntEnum):
    PREFLIGHT = 0
    REPLICATION = 1
    SHUTDOWN = 2
    STORAGE = 3
    START = 4
    MEMORY = 5
    VERIFY = 6


STEPS = (
    # number, key, name, planned minutes (thesis table 3.5; preflight from table 3.4)
    (0, "preflight", _("Preflight: mirror consistent, surviving dom0 up, network, capacity"), 0),
    (1, "inventory", _("Find the VMs already running at the surviving site"), 5),
    (2, "storage", _("Fail the DR groups over to the surviving site"), 30),
    (3, "integrity", _("Check the data on the surviving array"), 30),
    (4, "shrink", _("Set running VMs and dom0 to their disaster memory"), 15),
    (5, "start", _("Start the remaining VMs with their disaster memory"), 15),
    (6, "verify", _("Functional tests of the virtual machines"), 30),
)

# A drill rehearses the failover on clones, beside production (issue 6).
DRILL_STEPS = (
    (0, "preflight", _("Preflight: replicas consistent, surviving dom0 up, drill bridge, capacity"), 0),
    (1, "inventory", _("Find the VMs already running at the surviving site"), 5),
    (2, "storage", _("Snapshot the replicas and present the clones to the surviving dom0"), 30),
    (3, "integrity", _("Check that the surviving dom0 sees the clones"), 30),
    (4, "shrink", _("Set running VMs to their disaster memory (only if the drill asks)"), 15),
    (5, "start", _("Start the drill clones on the isolated bridge with disaster memory"), 15),
    (6, "verify", _("Functional tests of the drill clones"), 30),
)

# Generated from a drill's undo ledger.
CLEANUP_STEPS = (
    (0, "stop", _("Destroy the drill domains"), 5),
    (1, "memory", _("Give production VMs their memory back"), 5),
    (2, "storage", _("Unpresent and delete the snapshots"), 10),
    (3, "verify", _("Prove that nothing of the drill is left"), 5),
)

# A failback after a disaster (generated from the failover's undo ledger): stop on any error.
FAILBACK_STEPS = (
    (0, "preflight", _("Preflight: both sites answer, mirrors consistent, capacity"), 0),
    (1, "replication", _("Reverse replication toward the target and wait until it is consistent"), 30),
    (2, "shutdown", _("Shut the VMs down at the source"), 15),
    (3, "storage", _("Final sync, demote at the source, promote and present at the target"), 30),
    (4, "start", _("Start the VMs at the target"), 15),
    (5, "memory", _("Set memory to the target profile at both sites"), 15),
    (6, "verify", _("Functional tests of the virtual machines"), 30),
)

# A planned migration (both sites up): the failover's steps, with step 2 done the planned way.
PLANNED_STEPS = tuple(
    (n, key, _("Shut down at the source, final sync, demote, promote and present at the target"), minutes)
    if key == "storage"
    else (n, key, name, minutes)
    for n, key, name, minutes in STEPS
)


STEP_NAMES: dict[str, type[IntEnum]] = {
    "failover": FailoverStep,
    "drill": FailoverStep,
    "migration": FailoverStep,
    "cleanup": CleanupStep,
    "failback": FailbackStep,
}


def steps_for(kind: str) -> tuple:
    return {
        "drill": DRILL_STEPS,
        "cleanup": CLEANUP_STEPS,
        "failback": FAILBACK_STEPS,
        "migration": PLANNED_STEPS,
    }.get(kind, STEPS)
