"""How long a run will take: the measured step times of the site's last successful drill
(or failback), else the thesis' planned minutes."""

from __future__ import annotations

from failover.choices import steps_for

from .plan import Plan
from .selectors import drill_history


def apply_forecast(plan: Plan, site_code: str) -> None:
    """Predicted minutes per step: the measured step times of the last successful drill
    of this site (steps are barriers, so their sum is the critical path), else the
    thesis' planned minutes. A failback, whose steps a drill does not rehearse, uses the
    last failback from this site. A drill (or failback) more than 20 % slower than the
    one before is flagged."""
    plan.step_minutes = {number: float(minutes) for number, _key, _name, minutes in steps_for(plan.kind)}
    source = "failback" if plan.kind == "failback" else "drill"
    history = drill_history(site_code, limit=2, kind=source)
    if not history:
        plan.forecast = {"source": "thesis", "detail": f"planned minutes (no {source} measured yet)"}
        return
    last = history[0]
    measured = {s["key"]: s["actual_minutes"] for s in last["steps"]}
    for number, key, _name, _minutes in steps_for(plan.kind):
        if key in measured:
            plan.step_minutes[number] = round(float(measured[key]), 3)
    plan.forecast = {
        "source": source,
        "run": last["run"],
        "finished_at": last["finished_at"],
        "detail": f"measured step times of {source} run {last['run']} ({last['finished_at'][:16]})",
    }
    if last.get("slower_pct") is not None and last["slower_pct"] > 20:
        plan.warnings.append(
            f"the last {source} (run {last['run']}) took {last['minutes']:.1f} min, "
            f"{last['slower_pct']:.0f} % slower than the one before (run {last['previous_run']}): find out why"
        )
