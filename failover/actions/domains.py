"""Domains on a dom0: set memory (``xl mem-set``), start (``xl create``), shut down."""

from __future__ import annotations

from django.conf import settings

from .base import (
    ActionFailed,
    Context,
    Handler,
    Observation,
    Outcome,
    confirm,
    create_and_confirm,
    observe_running,
)


class SetMemory(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name, target = ctx.params["vm"], ctx.params["memory_mb"]
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None or not domain.is_alive:
            return Observation(None, f"{name} is not running on {ctx.action.host}")
        return Observation(
            domain.memory_mb == target,
            f"{name} has {domain.memory_mb} MB (target {target} MB)",
            {"memory_mb": domain.memory_mb},
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        if before.done is None:
            raise ActionFailed(before.detail)
        name, target = ctx.params["vm"], ctx.params["memory_mb"]
        ctx.xen(ctx.action.host).mem_set(name, target)
        # xl returns before the balloon driver has finished: confirm, briefly.
        after = confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"mem-set sent, but {after.detail}")
        return Outcome(
            f"{name}: {before.facts.get('memory_mb')} MB -> {target} MB",
            {"memory_mb": target},
            undo={
                "kind": "set_memory",
                "vm": name,
                "host": ctx.action.host,
                "memory_mb": before.facts.get("memory_mb"),
            },
        )


class StartVM(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        return observe_running(ctx, ctx.params["vm"])

    def act(self, ctx: Context) -> Outcome:
        name, memory = ctx.params["vm"], ctx.params["memory_mb"]
        earlier = create_and_confirm(
            ctx, self, name, lambda: ctx.xen(ctx.action.host).create(ctx.params["config_path"], memory)
        )
        if earlier:
            return earlier
        return Outcome(
            f"started {name} on {ctx.action.host} with {memory} MB",
            {"memory_mb": memory},
            undo={"kind": "shutdown_vm", "vm": name, "host": ctx.action.host},
        )


class ShutdownVM(Handler):
    """Shut a VM down cleanly (``xl shutdown -w``); a VM that does not stop is left to a
    person (it is never destroyed behind their back)."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name = ctx.params["vm"]
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None:
            return Observation(True, f"{name} is not running on {ctx.action.host}")
        return Observation(
            False,
            f"{name} runs on {ctx.action.host} with {domain.memory_mb} MB",
            {"memory_mb": domain.memory_mb},
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        name = ctx.params["vm"]
        if not before.done:
            ctx.xen(ctx.action.host).shutdown(name, float(getattr(settings, "DRPORTAL_SHUTDOWN_WAIT_S", 300)))
        after = confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"xl shutdown returned, but {after.detail}; shut it down by hand, then Retry")
        return Outcome(
            f"{name} shut down on {ctx.action.host}",
            undo={
                "kind": "start_vm",
                "vm": name,
                "host": ctx.action.host,
                "memory_mb": before.facts.get("memory_mb"),
            },
        )
