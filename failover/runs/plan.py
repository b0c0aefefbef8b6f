"""A run's plan: what it will do, shown before anything starts, frozen into Steps and
Actions at start. ``Plan`` and ``PlannedAction`` are shared by every kind of run (a
failover, a drill, its cleanup, a failback, a planned migration); so are the blocks that
several kinds plan alike (the functional checks of a VM, the dom0s' disaster memory, the
order of the starts).

Blocking problems stop a run unless the MoD overrides them with a typed reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Problem:
    code: str
    message: str
    fix: str = ""


@dataclass
class PlannedAction:
    key: str  # unique within the plan, e.g. "start:proxy-xen01"
    step: int
    kind: str
    target: str
    host: str  # the SSH host it talks to
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

    @property
    def predicted_minutes(self) -> float:
        return sum(self.step_minutes.values())

    def as_dict(self) -> dict:
        data = asdict(self)
        data["predicted_minutes"] = self.predicted_minutes
        return data
