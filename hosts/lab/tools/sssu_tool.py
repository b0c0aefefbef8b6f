"""The lab's simulated ``sssu`` (served on array hosts, each its own management host).

It accepts exactly the words of the real SSSU 8.0 keyword table (sssu_words.py) and
answers in SSSU's output form: a banner, each command echoed after the prompt
(``NoSystemSelected>``, then ``<system>>``), ``<object path> information:`` blocks of
``key ....: value`` lines. Any error prints ``Error: <message>`` and ends the session
with exit status 1 (what drportal asks for with ``SET OPTIONS ON_ERROR=EXIT_ON_ERROR``;
public scripts also treat any ``Error`` line as failure whatever the status). It is
written from the real tool's vocabulary, not from the driver: the driver's syntax block
(hosts/drivers/eva_syntax.py) says which of its assumptions are still UNVERIFIED.

Commands (words of the table only; values free where shown <...>):
  FILE <path>                                run the commands in a file on this host
  SELECT MANAGER <host> USERNAME=<u> PASSWORD=<p>   refused without both; checked
  SELECT SYSTEM <name>
  SET OPTIONS ON_ERROR=EXIT_ON_ERROR|HALT_ON_ERROR|CONTINUE   (errors always stop here)
  LS SYSTEM | LS DR_GROUP | LS VDISK | LS SNAPSHOT | LS HOST | LS LUN   [<path>] [FULL]
  SET DR_GROUP <path> FAILOVER | FAILOVER_SUSPEND | SUSPEND | NOSUSPEND | FORCEFULLCOPY
                      | ACCESSMODE=READONLY|PRESENTONLY|DISABLE
  ADD LUN <n, 0 = next free> VDISK=<path> HOST=<path>
  DELETE LUN <host path>\\<n>
  ADD SNAPSHOT <name> VDISK=<path> [ALLOCATION_POLICY=DEMAND|FULLY] [WORLD_WIDE_LUN_NAME=<wwn>]
  DELETE VDISK <path> [WAIT_FOR_COMPLETION|NOWAIT_FOR_COMPLETION]   (snapshots only)
  EXIT
Other words of the table are known but not simulated: they answer an ``Error:`` saying so.

Continuous Access rules (sssu_ca.py; HP CA EVA Administrator Guide T3687-96043): FAILOVER only on a
destination, swapping source and destination (the failover reverses the replication); a
destination whose full copy is running cannot fail over; the source logs while its
destination is unreachable or the group is suspended, and once a lost array answers again
the array full-copies the new source's data back to it by itself (with
``fullcopy_autosuspend`` set on the group it suspends instead, and a FORCEFULLCOPY starts
it); a group left "broken" while both arrays answer is a replication link that is down. The lab's own invariants stay: never two primaries (an
unreachable partner is fenced, replication.py), timed copies, and no FAILOVER, DELETE LUN
or DELETE VDISK of what a running domain on a reachable dom0 still uses.
"""

from __future__ import annotations

import hashlib
import time

from hosts.lab.tools import eva_model as eva
from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found
from hosts.lab.tools.sssu_ca import domains_using, group_view, restore, set_group
from hosts.lab.tools.sssu_words import SssuError, block, keyword, options, split_words

BANNER = "\n\nSSSU for HP StorageWorks Command View EVA\nVersion: 8.0.0\nBuild: drportal-lab\n"
_LS_OBJECTS = ("SYSTEM", "DR_GROUP", "VDISK", "SNAPSHOT", "HOST", "LUN")


def _object_id(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode(), usedforsecurity=False).hexdigest()


class Session:
    """One run of ``sssu``: who logged in, which system is selected, what was printed."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.out: list[str] = [BANNER]
        self.manager = False
        self.array: str | None = None
        self.exited = False

    # -- the session ----------------------------------------------------------------------

    def prompt(self) -> str:
        return self.system_of(self.array) if self.array else "NoSystemSelected"

    def run(self, command: str, depth: int = 0) -> None:
        self.out.append(f"{self.prompt()}> {command}\n")
        words = split_words(command)
        if not words:
            return
        verb = keyword(words[0])
        if verb == "FILE":
            self.file(words[1:], depth)
            self.out.append("\n")
            return
        handler = {
            "SELECT": self.select,
            "SET": self.set,
            "LS": self.ls,
            "ADD": self.add,
            "DELETE": self.delete,
            "EXIT": self.exit,
        }.get(verb)
        if handler is None:
            raise SssuError(f"{verb} is an SSSU command the drportal lab does not simulate")
        handler(words[1:])
        self.out.append("\n")

    def file(self, args: list[str], depth: int = 0) -> None:
        if len(args) != 1:
            raise SssuError("FILE needs one file name")
        if depth:
            raise SssuError("FILE inside FILE is not simulated")
        text = self.ctx.host_state.get("files", {}).get(args[0])
        if text is None:
            raise SssuError(f"Unable to open file {args[0]}")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                self.run(line.strip(), depth + 1)
                if self.exited:
                    return

    def exit(self, args: list[str]) -> None:
        if args:
            raise SssuError("EXIT takes no options")
        self.exited = True

    def select(self, args: list[str]) -> None:
        what = keyword(args[0], "MANAGER", "SYSTEM") if args else ""
        if what == "MANAGER":
            if len(args) < 2:
                raise SssuError("SELECT MANAGER needs the manager's name")
            given = options(args[2:], free=("USERNAME", "PASSWORD"))
            if "USERNAME" not in given or "PASSWORD" not in given:
                raise SssuError("SELECT MANAGER needs USERNAME= and PASSWORD=")
            accounts = self.ctx.host_state.get("sssu_accounts", {})
            if accounts.get(given["USERNAME"]) != given["PASSWORD"]:
                # Never the password itself: the answer is logged by whoever asked.
                raise SssuError(
                    f"Error opening https connection to {args[1]}: login failed for {given['USERNAME']}"
                )
            self.manager = True
        elif what == "SYSTEM":
            if not self.manager:
                raise SssuError("No manager selected")
            if len(args) < 2:
                raise SssuError("SELECT SYSTEM needs the system's name")
            self.array = self.array_host(" ".join(args[1:]))
        else:
            raise SssuError("SELECT needs MANAGER or SYSTEM")

    # -- lookups --------------------------------------------------------------------------

    def system_of(self, host: str) -> str:
        return str(self.ctx.state["hosts"].get(host, {}).get("system", host))

    def array_host(self, system: str) -> str:
        for name in eva.eva_arrays(self.ctx.state):
            if system.lower() in (name.lower(), self.system_of(name).lower()):
                if self.ctx.host_is_down(name):
                    raise SssuError(f"System {system} is not responding")
                return name
        raise SssuError(f"System {system} not found")

    def need_system(self) -> str:
        if self.array is None:
            raise SssuError("No system selected")
        return self.array

    def group(self, path: str) -> tuple[str, dict]:
        array = self.need_system()
        name = path[len(eva.GROUP_ROOT) :] if path.lower().startswith(eva.GROUP_ROOT.lower()) else path
        group = self.ctx.state.get("groups", {}).get(name)
        if (
            group is None
            or group.get("kind") != "eva-ca"
            or array not in group["sides"]
            or len(group["sides"]) < 2
        ):
            raise SssuError(f"DR group {eva.GROUP_ROOT}{name} does not exist on this system")
        restore(self.ctx, name, group)
        return name, group

    def dr_groups(self) -> list[str]:
        array = self.need_system()
        return [
            name
            for name, group in sorted(self.ctx.state.get("groups", {}).items())
            if group.get("kind") == "eva-ca" and array in group["sides"] and len(group["sides"]) > 1
        ]

    def vdisk(self, index: eva.ArrayIndex, path: str) -> eva.Vdisk:
        found = index.by_path(path)
        if found is None:
            raise SssuError(f"Virtual disk {path} does not exist on this system")
        return found

    def host_path(self, path: str) -> str:
        host = path[len(eva.HOST_ROOT) :] if path.lower().startswith(eva.HOST_ROOT.lower()) else ""
        if not host or self.ctx.state["hosts"].get(host, {}).get("kind") != "dom0":
            raise SssuError(f"Host {path} does not exist")
        return host

    # -- LS -------------------------------------------------------------------------------

    def ls(self, args: list[str]) -> None:
        if not args:
            raise SssuError("LS needs an object type")
        what = keyword(args[0], *_LS_OBJECTS)
        rest = args[1:]
        full = bool(rest) and rest[-1].upper() == "FULL"
        if full:
            rest = rest[:-1]
        if len(rest) > 1:
            raise SssuError(f"LS {what}: unexpected {' '.join(rest[1:])}")
        if what == "SYSTEM":
            self.ls_systems(rest)
            return
        array = self.need_system()
        index = eva.ArrayIndex(self.ctx.state, array)
        if what == "DR_GROUP":
            names = [self.group(rest[0])[0]] if rest else self.dr_groups()
            if rest or full:
                self.out += [self.group_block(name) for name in names]
            else:
                self.out += [f"  {eva.GROUP_ROOT}{name}\n" for name in names]
        elif what in ("VDISK", "SNAPSHOT"):
            if rest:
                vdisks = [self.vdisk(index, rest[0])]
            else:
                vdisks = [
                    v
                    for _, v in sorted(index.vdisks.items())
                    if (v.snapshot is not None) == (what == "SNAPSHOT")
                ]
            if rest or full:
                self.out += [self.vdisk_block(index, v) for v in vdisks]
            else:
                self.out += [f"  {v.path}\n" for v in vdisks]
        elif what == "HOST":
            hosts = sorted(
                n for n in self.ctx.state["hosts"] if self.ctx.state["hosts"][n].get("kind") == "dom0"
            )
            self.out += [f"  {eva.HOST_ROOT}{h}\n" for h in hosts]
        else:  # LUN
            luns = [(h, lun, v) for v, where in index.presented.items() for h, lun in where]
            self.out += [f"  {eva.HOST_ROOT}{h}\\{lun}\n" for h, lun, _ in sorted(luns)]

    def ls_systems(self, rest: list[str]) -> None:
        if not self.manager:
            raise SssuError("No manager selected")
        if rest:
            raise SssuError("LS SYSTEM <name> is not simulated")
        self.out.append("Systems available on this Manager:\n")
        self.out += [f"  {self.system_of(name)}\n" for name in eva.eva_arrays(self.ctx.state)]

    def group_block(self, name: str) -> str:
        group = self.ctx.state["groups"][name]
        array = self.need_system()
        view = group_view(self.ctx, array, group)
        members = [[("objectname", eva.vdisk_path(v["name"]))] for v in group["sides"][array]["vdisks"]]
        rows = [
            ("objectid", _object_id(array, name)),
            ("objectname", f"{eva.GROUP_ROOT}{name}"),
            ("objecttype", "datareplicationgroup"),
            *view,
        ]
        return block(f"{eva.GROUP_ROOT}{name}", rows, {"members": members})

    def vdisk_block(self, index: eva.ArrayIndex, vdisk: eva.Vdisk) -> str:
        state = self.ctx.state
        drm, group_path, comment, kind = "none", "", "", "snapshot"
        operational = "good"
        if vdisk.snapshot is None:
            kind = "original"
            group = state["groups"][vdisk.group] if vdisk.group else None
            if group is not None:
                side = group["sides"][self.need_system()]
                comment = f"device={group['devices'][vdisk.index]}"
                if len(group["sides"]) > 1:
                    drm = "source" if side["role"] == "primary" else "destination"
                    group_path = f"{eva.GROUP_ROOT}{vdisk.group}"
                if side.get("disk_state", "UpToDate") not in ("UpToDate", "Inconsistent"):
                    operational = "attention"
        created = (vdisk.snapshot or {}).get("created_at", 0.0)
        rows = [
            ("objectid", _object_id(vdisk.array, vdisk.name)),
            ("objectname", vdisk.path),
            ("objecttype", "virtualdisk"),
            ("familyname", vdisk.snapshot["parent"] if vdisk.snapshot else vdisk.name),
            ("virtualdisktype", kind),
            ("wwlunid", vdisk.wwid),
            ("comments", comment),
            ("creationdatetime", time.strftime("%d-%b-%Y %H:%M:%S", time.gmtime(created))),
            ("operationalstate", operational),
            ("drmmode", drm),
            ("drmgroupname", group_path),
        ]
        presentations = [
            [("hostname", f"{eva.HOST_ROOT}{host}"), ("lunnumber", lun)]
            for host, lun in index.presentations(vdisk.name)
        ]
        return block(vdisk.path, rows, {"presentations": presentations})

    # -- SET ------------------------------------------------------------------------------

    def set(self, args: list[str]) -> None:
        what = keyword(args[0], "OPTIONS", "DR_GROUP") if args else ""
        if what == "OPTIONS":
            options(args[1:], choices={"ON_ERROR": ("EXIT_ON_ERROR", "HALT_ON_ERROR", "CONTINUE")})
        elif what == "DR_GROUP":
            if len(args) < 3:
                raise SssuError("SET DR_GROUP needs a DR group and what to change")
            name, group = self.group(args[1])
            given = options(
                args[2:],
                choices={
                    "": ("FAILOVER", "FAILOVER_SUSPEND", "SUSPEND", "NOSUSPEND", "FORCEFULLCOPY"),
                    "ACCESSMODE": ("READONLY", "PRESENTONLY", "DISABLE"),
                },
            )
            for option, value in given.items():
                set_group(self.ctx, self.need_system(), name, group, option, value)
        else:
            raise SssuError("SET needs OPTIONS or DR_GROUP")

    # -- ADD / DELETE ---------------------------------------------------------------------

    def target(self, verb: str, args: list[str], *objects: str) -> tuple[str, eva.ArrayIndex]:
        """ADD / DELETE <object> <name> ...: the object word and the selected array's vdisks."""
        if len(args) < 2:
            raise SssuError(f"{verb} needs {' or '.join(objects)} and a name")
        what = keyword(args[0], *objects)
        return what, eva.ArrayIndex(self.ctx.state, self.need_system())

    def add(self, args: list[str]) -> None:
        what, index = self.target("ADD", args, "LUN", "SNAPSHOT")
        array = index.array
        if what == "LUN":
            given = options(args[2:], free=("VDISK", "HOST"))
            if not args[1].isdigit() or "VDISK" not in given or "HOST" not in given:
                raise SssuError("ADD LUN needs a LUN number (0: the next free one), VDISK= and HOST=")
            vdisk = self.vdisk(index, given["VDISK"])
            host = self.host_path(given["HOST"])
            if any(h == host for h, _ in index.presentations(vdisk.name)):
                raise SssuError(f"Virtual disk {vdisk.path} is already presented to {given['HOST']}")
            table = eva.luns_of(self.ctx.state, array).get(host, {})
            if int(args[1]) and str(int(args[1])) in table:
                raise SssuError(f"LUN {int(args[1])} is already in use on {given['HOST']}")
            lun = eva.add_lun(self.ctx.state, array, host, vdisk.name, int(args[1]))
            self.ctx.notes.append(f"{vdisk.name} presented to {host} as LUN {lun}")
        else:
            self.add_snapshot(index, args[1], args[2:])

    def add_snapshot(self, index: eva.ArrayIndex, name: str, rest: list[str]) -> None:
        given = options(
            rest, free=("VDISK", "WORLD_WIDE_LUN_NAME"), choices={"ALLOCATION_POLICY": ("DEMAND", "FULLY")}
        )
        if "VDISK" not in given:
            raise SssuError(f"ADD SNAPSHOT {name} needs VDISK=")
        parent = self.vdisk(index, given["VDISK"])
        if parent.snapshot is not None:
            raise SssuError(f"Virtual disk {parent.path} is a snapshot: snapshot its original")
        if name in self.ctx.state.get("snapshots", {}) or name in index.vdisks:
            raise SssuError(f"Virtual disk {name} already exists")
        group = self.ctx.state["groups"][parent.group]
        side = group["sides"][index.array]
        if side.get("disk_state", "UpToDate") != "UpToDate":
            raise SssuError(
                f"Virtual disk {parent.path} is not consistent ({side.get('disk_state')}, replication "
                f"{group.get('replication')}): a snapshot of it would not be usable"
            )
        self.ctx.state.setdefault("snapshots", {})[name] = {
            "array": index.array,
            "parent": parent.name,
            "group": parent.group,
            "device": group["devices"][parent.index],
            "wwid": given.get("WORLD_WIDE_LUN_NAME") or eva.wwid(index.array, name),
            "created_at": self.ctx.now,
        }
        self.ctx.notes.append(f"snapshot {name} of {parent.name} on {index.array}")

    def delete(self, args: list[str]) -> None:
        what, index = self.target("DELETE", args, "LUN", "VDISK")
        array = index.array
        if what == "LUN":
            if args[2:]:
                raise SssuError(f"DELETE LUN: unexpected {' '.join(args[2:])}")
            host_path, _, lun = args[1].rpartition("\\")
            host = self.host_path(host_path)
            table = eva.luns_of(self.ctx.state, array).get(host, {})
            if not lun.isdigit() or str(int(lun)) not in table:
                raise SssuError(f"LUN {args[1]} does not exist")
            vdisk = index.vdisks[table[str(int(lun))]]
            users = domains_using(self.ctx, index, vdisk, host)
            if users:
                raise SssuError(f"Virtual disk {vdisk.path} is in use by domain {users[0]} on host {host}")
            del table[str(int(lun))]
            self.ctx.notes.append(f"{vdisk.name} unpresented from {host} (LUN {int(lun)})")
            return
        options(args[2:], choices={"": ("WAIT_FOR_COMPLETION", "NOWAIT_FOR_COMPLETION")})
        vdisk = self.vdisk(index, args[1])
        if vdisk.snapshot is None:
            raise SssuError(
                f"Virtual disk {vdisk.path} is not a snapshot: the drportal lab deletes snapshots only"
            )
        presentations = index.presentations(vdisk.name)
        if presentations:
            hosts = ", ".join(f"{eva.HOST_ROOT}{h}" for h, _ in presentations)
            raise SssuError(f"Virtual disk {vdisk.path} is presented to {hosts}; delete its LUNs first")
        del self.ctx.state["snapshots"][vdisk.name]
        self.ctx.notes.append(f"snapshot {vdisk.name} deleted")


def sssu(ctx: ToolContext, argv: list[str]) -> ToolResult:
    if ctx.host_state.get("kind") != "array":  # the array host doubles as management host
        return command_not_found(argv[0])
    session = Session(ctx)
    for command in argv[1:]:
        try:
            session.run(command)
        except SssuError as exc:
            session.out.append(f"Error: {exc}\n")
            return 1, "".join(session.out), ""
        if session.exited:
            break
    return 0, "".join(session.out), ""


REGISTRY_ENTRIES = {"sssu": sssu}
