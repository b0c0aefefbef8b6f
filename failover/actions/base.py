"""What every action handler shares: observe first, act only when the estate is not yet in
the target state, then observe again — an action is done only when the estate says so.

Handlers run outside any transaction and know the estate only through the drivers; a
``Context`` gives them the action, an SSH connection per host and a log of every command.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import connection

from failover.models import Action, Run
from hosts.connect import ssh_target, storage_driver
from hosts.drivers.base import CommandResult, DriverError, quote_command
from hosts.drivers.ssh import ConnectRetry, SSHConnection, SSHTarget
from hosts.drivers.xen import DuplicateDomain, XenDriver
from hosts.models import Host, StorageArray


class Connections(Protocol):
    """Where a handler gets its connection to a host: an SSHPool, or the connections the
    engine leases to one action (hosts.drivers.ssh.LeasedConnections)."""

    def get(
        self, target: SSHTarget, *, on_retry: Callable[[ConnectRetry], None] | None = None
    ) -> SSHConnection: ...


# How a handler's context reads one inventory row by a unique field: the engine passes its
# hot-path reader (engine.sql.get), since the engine calls the actions, never the reverse.
RowLoader = Callable[[type[Any], str, object], Any]


class ActionFailed(DriverError):
    """The estate did not reach the target state; the message says what it shows instead."""


class CheckDown(ActionFailed):
    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


@dataclass
class Observation:
    done: bool | None  # True: in the target state; False: not yet (safe to act); None: cannot tell
    detail: str
    facts: dict = field(default_factory=dict)


@dataclass
class Outcome:
    detail: str
    result: dict = field(default_factory=dict)
    outcome: str = ""  # functional tests: ok, down, note
    undo: dict = field(default_factory=dict)


def lend_back_connection() -> None:
    """With a connection pool (DB_POOL_MAX_SIZE), give this thread's database connection
    back to it before every SSH command and every wait, unless half the pool is idle. An
    action waits on SSH for seconds and needs the database only for a few short reads,
    so the threads of a worker running hundreds of actions at once share a few
    connections; but taking one back out of the pool costs a round trip (the pool checks
    it) and Django's connection set-up, so while the pool is mostly idle (a step bound by
    its array runs four actions at once) a thread keeps its own. Without a pool, keep
    it: a new connection costs more than the reads."""
    if not connection.settings_dict.get("OPTIONS", {}).get("pool") or connection.in_atomic_block:
        return
    pool = getattr(connection, "pool", None)  # PostgreSQL's wrapper has it (psycopg_pool)
    if connection.connection is not None and pool is not None and pool_mostly_idle(pool.get_stats()):
        return
    connection.close()


def pool_mostly_idle(stats: dict[str, int]) -> bool:
    """Is at least half of the pool idle with nobody waiting for a connection? (psycopg_pool's
    ``get_stats()``: idle connections, its size limit, threads waiting.)"""
    return not stats.get("requests_waiting") and 2 * stats.get("pool_available", 0) >= stats["pool_max"]


class LoggedRunner:
    """A shared connection seen through one action: every command it sends, and every
    failure, goes into that action's log (connections are shared between actions)."""

    def __init__(self, conn: SSHConnection, ctx: Context) -> None:
        self._conn, self._ctx = conn, ctx
        self.name = conn.name

    def run(self, argv, *, timeout: float | None = None) -> CommandResult:
        lend_back_connection()  # no database connection held while the host answers
        try:
            result = self._conn.run(argv, timeout=timeout, on_retry=self._ctx.connect_retried)
        except DriverError as exc:
            self._ctx.lines.append(f"[{self.name}] $ {quote_command(argv)}  -> {exc}")
            raise
        self._ctx.log_command(result)
        return result


class Context:
    """One action's execution: its run, a connection pool, and a log of every command."""

    def __init__(self, action: Action, pool: Connections, *, load: RowLoader) -> None:
        self._load = load
        self.action = action
        self.params = action.params
        self.pool = pool
        self.lines: list[str] = []
        self._hosts: dict[str, Host] = {}
        # What observe() read, for act() right after it (a handler's own business).
        self.seen: dict = {}
        self._arrays: dict[str, StorageArray] = {}

    @functools.cached_property
    def run(self) -> Run:
        """The action's run with its disaster and sites; read when a handler asks (only the
        fencing check does), fresh for every attempt."""
        return (
            Run.objects.select_related("disaster__isolation_confirmed_by", "lost_site")
            .defer("plan")
            .get(pk=self.action.run_id)
        )

    def note(self, line: str) -> None:
        self.lines.append(line)

    def connect_retried(self, retry: ConnectRetry) -> None:
        """A host did not answer at first and is tried again: in the action's log, on
        the board (the SSH layer's own log warning is the worker's)."""
        self.note(f"[{retry.target.name}] {retry}")

    def log_command(self, result: CommandResult) -> None:
        text = f"[{result.host}] $ {result.command}  -> exit {result.exit_status} ({result.seconds:.2f} s)"
        output = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()
        if output:
            text += "\n" + "\n".join("    " + line for line in output.splitlines()[:40])
        self.lines.append(text)

    def host(self, name: str) -> Host:
        # Read once per action (observe and act both ask): a fix made in the inventory
        # between two attempts still counts, since each attempt has its own context.
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = self._load(Host, "name", name)
        return host

    def conn(self, target: SSHTarget) -> LoggedRunner:
        return LoggedRunner(self.pool.get(target, on_retry=self.connect_retried), self)

    def xen(self, host_name: str) -> XenDriver:
        host = self.host(host_name)
        return XenDriver(self.conn(ssh_target(host)), host.toolstack)

    def storage(self, array_name: str):
        array = self._arrays.get(array_name)
        if array is None:
            array = self._arrays[array_name] = self._load(StorageArray, "name", array_name)
        runner = None if array.kind == "manual" else self.conn(ssh_target(array))
        driver = storage_driver(array, runner)
        if self.params.get("members") and array_name == self.params.get("array"):
            # The plan's reading of the group's members: its next read is one call.
            driver.remember_members(self.params["group"], self.params["members"])
        return driver


class Handler:
    """Read-only handlers observe nothing: running them again is always safe."""

    side_effects = False

    def observe(self, ctx: Context) -> Observation:
        return Observation(False, "read-only check: runs every time")

    def act(self, ctx: Context) -> Outcome:
        raise NotImplementedError


def confirm(observe: Callable[[], Observation], tries: int = 10, pause: float = 0.3) -> Observation:
    seen = observe()
    for _ in range(tries - 1):
        if seen.done:
            return seen
        time.sleep(pause)
        seen = observe()
    return seen


def observe_running(ctx: Context, name: str) -> Observation:
    """Is domain ``name`` running on the action's host? Done if alive, not yet if absent,
    and "cannot tell" if it is there but crashed, dying or paused."""
    domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
    if domain is None:
        return Observation(False, f"{name} is not running on {ctx.action.host}")
    if domain.is_alive:
        return Observation(
            True,
            f"{name} runs on {ctx.action.host} with {domain.memory_mb} MB ({domain.state})",
            {"memory_mb": domain.memory_mb},
        )
    return Observation(None, f"{name} is on {ctx.action.host} but {domain.state}: a person must look at it")


def create_and_confirm(
    ctx: Context, handler: Handler, name: str, create: Callable[[], object]
) -> Outcome | None:
    """Run ``create`` (an ``xl create``) and confirm the domain runs. If an earlier
    attempt's create (its worker died mid-way) won the race, Xen refuses a second domain
    of that name: that start is the outcome (None: this attempt started it)."""
    try:
        create()
    except DuplicateDomain:
        seen = handler.observe(ctx)
        if seen.done:
            return Outcome(f"{name} was started by an earlier attempt: {seen.detail}", seen.facts)
        raise
    after = confirm(lambda: handler.observe(ctx))
    if not after.done:
        raise ActionFailed(f"xl create returned, but {after.detail}")
    return None
