"""The plan preview of a declaration, and its digest: what the Manager on Duty reviewed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.utils.translation import gettext as _

from hosts.drivers.base import DriverError
from hosts.models import Site

from .failover import build_plan
from .plan import Plan


def plan_digest(plan: Plan) -> str:
    """What the Manager on Duty reviewed in the preview; a declaration against a plan that
    has changed since is refused, so nobody starts what they have not seen. Problems and
    warnings count by what they are about (the text before the first colon), not by the
    detail of an error message that may differ from one look to the next."""

    def head(text: str) -> str:
        return text.split(":", 1)[0]

    seen = {
        "target": plan.target_site,
        "blocking": sorted(f"{p.code} {head(p.message)}" for p in plan.blocking),
        "warnings": sorted(head(w) for w in plan.warnings),
        "starts": sorted((s["vm"], s["host"], s["memory_mb"]) for s in plan.starts),
        "memory": sorted((m["vm"], m["host"], m["to_mb"]) for m in plan.memory_changes),
        "groups": sorted(plan.groups),
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Preview:
    lost_site: str
    plan: Plan | None = None
    digest: str = ""
    error: str = ""


def plan_preview(*, lost_site: str) -> Preview:
    """The plan for losing ``lost_site``, as the declare page shows it. Looks at the
    surviving site over SSH; an estate it cannot plan for comes back as ``error``."""
    try:
        plan = build_plan(lost_site=lost_site)
    except Site.DoesNotExist:
        return Preview(lost_site, error=_("There is no site %(site)s.") % {"site": lost_site})
    except (ValueError, DriverError) as exc:
        return Preview(lost_site, error=str(exc))
    return Preview(lost_site, plan=plan, digest=plan_digest(plan))
