"""A run's plan: what it will do, shown before anything starts, frozen into Steps and
Actions at start. ``Plan`` and ``PlannedAction`` are shared by every kind of run (a
failover, a drill, its cleanup, a failback, a planned migration); ``blocks`` makes the
actions that several kinds plan alike.

Blocking problems stop a run unless the MoD overrides them with a typed reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache


@dataclass
class Problem:
    code: str
    message: str
    fix: str = ""
    hard: bool = False  # no typed reason overrides it: the fix is the only way on


@dataclass(kw_only=True)
class PlannedAction:
    """One action of a plan, by keyword only (the blocks in ``blocks`` make them)."""

    key: str  # unique within the plan, e.g. "start:proxy-xen01"
    step: int  # a named step of the run's kind: FailoverStep, CleanupStep or FailbackStep
    kind: str  # ActionKindChoices: which handler does it
    target: str  # what it acts on, for people
    host: str  # the SSH host it talks to (the per-host concurrency bound counts it)
    params: dict = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    optional: bool = False


@dataclass
class Plan:
    lost_site: str
    target_site: str
    mode: str
    actions: list[PlannedAction] = field(default_factory=list)
    already_running: list[dict] = field(default_factory=list)
    memory_changes: list[dict] = field(default_factory=list)
    starts: list[dict] = field(default_factory=list)
    unrecoverable: list[dict] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    blocking: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    step_minutes: dict[int, float] = field(default_factory=dict)
    kind: str = "failover"
    forecast: dict = field(default_factory=dict)  # where step_minutes come from
    options: dict = field(default_factory=dict)  # a drill's shrink and hold, a failback's parent
    site: dict = field(default_factory=dict)  # a disaster's: where the lost site stood (sitestate)

    @property
    def predicted_minutes(self) -> float:
        return sum(self.step_minutes.values())

    def as_dict(self) -> dict:
        """What ``dataclasses.asdict`` gives (every field, nested values copied), without
        its deep copy of every value: a run of 5,000 VMs freezes 20,000 actions."""
        data = {f.name: _copied(getattr(self, f.name)) for f in fields(self)}
        data["predicted_minutes"] = self.predicted_minutes
        return data


_SCALARS = (str, int, float, bool, type(None))


def _copied(value):
    """A copy of plan data (dataclasses, dicts, lists, tuples of str/int/float/bool/None)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {key: item if isinstance(item, _SCALARS) else _copied(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(item if isinstance(item, _SCALARS) else _copied(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {
            name: item if isinstance(item := getattr(value, name), _SCALARS) else _copied(item)
            for name in _field_names(type(value))
        }
    return value


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
