"""Read-only questions to a dom0: does it answer (preflight), what runs on it (inventory),
does it swap (verify)."""

from __future__ import annotations

from .base import (
    ActionFailed,
    Context,
    Handler,
    Outcome,
)


class CheckHost(Handler):
    def act(self, ctx: Context) -> Outcome:
        info = ctx.xen(ctx.action.host).info()
        return Outcome(
            f"{ctx.action.host} answers: {info.total_memory_mb} MB RAM, {info.free_memory_mb} MB free, "
            f"{info.nr_cpus} CPUs, Xen {info.xen_version}",
            {"total_mb": info.total_memory_mb, "free_mb": info.free_memory_mb},
        )


class InventoryHost(Handler):
    def act(self, ctx: Context) -> Outcome:
        domains = ctx.xen(ctx.action.host).list_domains()
        running = {d.name: d.memory_mb for d in domains if d.is_alive and not d.is_dom0}
        listed = ", ".join(f"{n} ({mb} MB)" for n, mb in sorted(running.items())) or "none"
        return Outcome(f"already running on {ctx.action.host}: {listed}", {"running": running})


class CheckNoSwap(Handler):
    def act(self, ctx: Context) -> Outcome:
        xen = ctx.xen(ctx.action.host)
        info = xen.info()
        used = sum(d.memory_mb for d in xen.list_domains() if d.domid is not None)
        if used > info.total_memory_mb:
            raise ActionFailed(f"{ctx.action.host}: domains hold {used} MB of {info.total_memory_mb} MB")
        return Outcome(
            f"{ctx.action.host}: {used} of {info.total_memory_mb} MB in use, {info.free_memory_mb} MB free: no swapping",
            {"used_mb": used, "total_mb": info.total_memory_mb},
        )
