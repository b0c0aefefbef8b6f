"""The simulated Xen toolstack of a lab dom0: `xl` (libxl) and `xm` (xend).

Handlers per hosts/lab/tools/base.py: ``xl(ctx, argv)`` / ``xm(ctx, argv)`` with the full
argv (``argv[0]`` is the command word). Output and messages follow
xen-storage-cli-reference.md §1; where the reference has no wording (a lab-only refusal)
the message keeps the tool's shape and says so in a comment.

Memory accounting is the point of the lab: Domain-0 and every domain hold ``memory_mb``;
free = total_memory_mb - sum(memory_mb); nothing that would overdraw it is accepted, so
the sum never exceeds total_memory_mb.

Optional dom0 keys read here beyond the schema: ``long_format`` ("json" default, "sxp"),
``autoballoon`` (True default: xl's own "failed to free memory" refusal; False: libxc's
"can't allocate low memory" lines, as with dom0_mem on the Xen command line). Created
domains also get ``start_time`` (for `uptime`).
"""

from __future__ import annotations

import posixpath
import re
import uuid as uuidlib
from collections.abc import Callable

from hosts.lab.tools import xen_format as fmt
from hosts.lab.tools.base import ToolContext, ToolResult, visible_devices
from hosts.lab.xl_config import LabConfig, LabConfigError, read_config

_UUID_NAMESPACE = uuidlib.UUID("6d1c8a4e-3f0b-4f4e-9c55-8a2f3e7b1d20")
LIBXL_MIN_DOM0_MEM_KB = 128 * 1024  # libxl refuses to shrink dom0 below this
_XM_CONFIG_DIRS = ("/etc/xen", "/etc/xen/vm")  # xm create <name> looks here (SLES: vm/)


class _Sim:
    """One command's view of one dom0."""

    def __init__(self, ctx: ToolContext, tool: str) -> None:
        self.ctx = ctx
        self.tool = tool
        self.host: dict = ctx.state["hosts"][ctx.host]

    @property
    def domains(self) -> list[dict]:
        return self.host["domains"]

    def used_mb(self) -> int:
        return sum(int(dom["memory_mb"]) for dom in self.domains)

    def free_mb(self) -> int:
        return int(self.host["total_memory_mb"]) - self.used_mb()

    def lookup(self, qualifier: str) -> dict | None:
        # libxl: all digits is a domid (no existence check), anything else a name.
        if qualifier.isdigit():
            return next((d for d in self.domains if d["domid"] == int(qualifier)), None)
        return next((d for d in self.domains if d["name"] == qualifier), None)

    def missing(self, qualifier: str) -> ToolResult:
        """The domain does not exist, as xl's find_domain / xend say it."""
        if self.tool == "xm":
            return 1, "", f"Error: Domain '{qualifier}' does not exist.\n"
        return 1, "", f"{qualifier} is an invalid domain identifier (rc=-6)\n"


def _usage(sim: _Sim, command: str, text: str) -> ToolResult:
    if sim.tool == "xm":
        return 1, "", f"Error: '{command}' requires {text}.\n\nUsage: xm {command} {text}\n"
    return 2, "", f"Usage: xl [-v] {command} {text}\n"


def _options(args: list[str], flags: str, with_value: str = "") -> tuple[dict[str, str], list[str]] | str:
    """getopt-ish: short flags (may repeat, e.g. -ww), long --wait/--long/--quiet/--force.
    Returns (options, positional) or the bad option."""
    longs = {"--long": "l", "--wait": "w", "--quiet": "q", "--all": "a", "--force": "f", "--dryrun": "n"}
    found: dict[str, str] = {}
    positional: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in longs and longs[arg] in flags:
            found[longs[arg]] = found.get(longs[arg], "") + "1"
        elif arg.startswith("-") and len(arg) > 1 and not arg.lstrip("-").isdigit():
            for index, letter in enumerate(arg[1:]):
                if letter in with_value:
                    found[letter] = arg[index + 2 :] or next(it, "")
                    break
                if letter not in flags:
                    return arg
                found[letter] = found.get(letter, "") + "1"
        else:
            positional.append(arg)
    return found, positional


# -- list, info, uptime ----------------------------------------------------------------------


def cmd_list(sim: _Sim, args: list[str]) -> ToolResult:
    parsed = _options(args, "lvZcn")
    if isinstance(parsed, str):
        return _usage(sim, "list", "[options] [Domain]")
    opts, names = parsed
    if len(names) > 1:
        return _usage(sim, "list", "[options] [Domain]")
    domains = sim.domains
    if names:
        dom = sim.lookup(names[0])
        if dom is None:
            if sim.tool == "xl" and names[0].isdigit():
                return 1, "", f"Error: Domain '{names[0]}' does not exist.\n"
            return sim.missing(names[0])
        domains = [dom]
    if "l" in opts:
        if sim.tool == "xm" or sim.host.get("long_format") == "sxp":
            return 0, fmt.list_long_sxp(domains, sim.tool, sim.ctx.host), ""
        return 0, fmt.list_long_json(domains), ""
    return 0, fmt.list_text(domains, sim.tool), ""


def cmd_info(sim: _Sim, args: list[str]) -> ToolResult:
    return 0, fmt.info_text(sim.ctx.host, sim.host, sim.free_mb(), sim.tool), ""


def cmd_uptime(sim: _Sim, args: list[str]) -> ToolResult:
    names = [arg for arg in args if not arg.startswith("-")]
    domains = sim.domains
    if names:
        domains = []
        for name in names:
            dom = sim.lookup(name)
            if dom is None:
                return sim.missing(name)
            domains.append(dom)
    return 0, fmt.uptime_text(sim.ctx.host, domains, sim.ctx.now, sim.tool), ""


# -- create ----------------------------------------------------------------------------------


def _resolve_config(sim: _Sim, path: str) -> str | None:
    files: dict[str, str] = sim.host.get("files", {})
    candidates = [posixpath.normpath(path if path.startswith("/") else posixpath.join("/root", path))]
    if sim.tool == "xm" and not path.startswith("/"):
        candidates += [posixpath.join(directory, path) for directory in _XM_CONFIG_DIRS]
    return next((candidate for candidate in candidates if candidate in files), None)


def _refuse_memory(sim: _Sim, cfg: LabConfig, domid: int) -> ToolResult | None:
    free = sim.free_mb()
    if cfg.memory_mb <= free:
        return None
    status, text = fmt.refuse_memory(sim.tool, sim.host.get("autoballoon", True), cfg.memory_mb, free, domid)
    return status, "", text


def _refuse_duplicate(sim: _Sim, cfg: LabConfig, domid: int) -> ToolResult | None:
    other = next((d for d in sim.domains if d["name"] == cfg.name), None)
    if other is None:
        return None
    status, text = fmt.refuse_duplicate(sim.tool, cfg.name, domid, other["domid"])
    return status, "", text


def _refuse_disks(sim: _Sim, cfg: LabConfig, domid: int) -> ToolResult | None:
    visible = visible_devices(sim.ctx.state, sim.ctx.host)
    for index, disk in enumerate(cfg.disks):
        if disk.cdrom and not disk.target:
            continue  # an empty CD-ROM drive: nothing to find
        if disk.target not in visible:
            status, text = fmt.refuse_disk(sim.tool, disk.target, disk.vdev, index, domid)
            return status, "", text
    return None


def _refuse_bridges(sim: _Sim, cfg: LabConfig, domid: int) -> ToolResult | None:
    bridges = set(sim.host.get("bridges", ()))
    for devid, nic in enumerate(cfg.nics):
        if nic.bridge not in bridges:
            status, text = fmt.refuse_bridge(sim.tool, nic.bridge, devid, domid)
            return status, "", text
    return None


# Bootloaders a lab dom0 has (libxl looks for a bare name in its private bindir first,
# libxl_bootloader.c bootloader_disk_attached_cb): any other must be a file of the host.
_BOOTLOADERS = ("pygrub", "/usr/bin/pygrub", "/usr/lib/xen-4.17/bin/pygrub", "/usr/lib/xen/bin/pygrub")


def _refuse_boot(sim: _Sim, cfg: LabConfig, domid: int) -> ToolResult | None:
    """A PV guest boots from its bootloader, else from its kernel= file (a file of the host)."""
    files = sim.host.get("files", {})
    if cfg.kind != "pv":
        return None
    if cfg.bootloader:
        if cfg.bootloader in _BOOTLOADERS or cfg.bootloader in files:
            return None
        status, text = fmt.refuse_bootloader(sim.tool, cfg.bootloader, domid)
        return status, "", text
    if cfg.kernel and cfg.kernel not in files:
        status, text = fmt.refuse_kernel(sim.tool, cfg.kernel, domid)
        return status, "", text
    return None


def cmd_create(sim: _Sim, args: list[str]) -> ToolResult:
    parsed = _options(args, "qpFVAcne", with_value="f")
    if isinstance(parsed, str):
        return _usage(sim, "create", "<ConfigFile> [options] [vars]")
    opts, words = parsed
    files = [word for word in words if "=" not in word]
    overrides = [word for word in words if "=" in word]
    if "f" in opts:
        files.insert(0, opts["f"])
    if len(files) != 1:
        return _usage(sim, "create", "<ConfigFile> [options] [vars]")
    path = _resolve_config(sim, files[0])
    if path is None:
        if sim.tool == "xm":
            return 1, "", f"Error: Unable to open config file: {files[0]}\n"
        return 3, "", f"Failed to read config file: {files[0]}: No such file or directory\n"
    said = "" if sim.tool == "xm" or "q" in opts else f"Parsing config from {path}\n"
    text = sim.host["files"][path]
    if overrides:
        # xl_vmcontrol.c create_domain: "\n%s\n" of the KEY=VALUE words, each ending in "\n".
        text += "\n" + "".join(f"{word}\n" for word in overrides) + "\n"
    try:
        cfg = read_config(text, path)  # libxlutil itself, never drportal's reader
    except LabConfigError as exc:
        if sim.tool == "xm":
            first = next((line for line in exc.stderr.splitlines() if line.strip()), "cannot read the config")
            return 1, "", f"Error: {first}\n"
        return exc.status, "", said + exc.stderr
    said += cfg.stderr
    domid = int(sim.host.get("next_domid", 1))
    if sim.tool == "xm":
        checks = (_refuse_duplicate, _refuse_memory, _refuse_boot, _refuse_disks, _refuse_bridges)
    elif sim.host.get("autoballoon", True):
        # freemem() first; then libxl: rename (duplicate), disk defaults, build (boot), hotplug.
        checks = (_refuse_memory, _refuse_duplicate, _refuse_disks, _refuse_boot, _refuse_bridges)
    else:
        checks = (_refuse_duplicate, _refuse_disks, _refuse_memory, _refuse_boot, _refuse_bridges)
    for check in checks:
        refusal = check(sim, cfg, domid)
        if refusal is not None:
            status, out, err = refusal
            # libxl allocated (and burnt) a domid unless xl's freemem() refused first.
            if sim.tool == "xl" and "failed to free memory" not in err:
                sim.host["next_domid"] = domid + 1
            return status, out, said + err

    dom = {
        "name": cfg.name,
        "domid": domid,
        "memory_mb": cfg.memory_mb,
        "max_memory_mb": cfg.max_memory_mb,
        "vcpus": cfg.vcpus,
        "state": "--p---" if "p" in opts else "-b----",
        "cpu_time": 0.0,
        "uuid": cfg.uuid or str(uuidlib.uuid5(_UUID_NAMESPACE, f"{sim.ctx.host}/{cfg.name}")),
        "config_path": path,
        "nics": [
            {"mac": nic.mac or _random_mac(sim.ctx.host, cfg.name, devid), "bridge": nic.bridge}
            for devid, nic in enumerate(cfg.nics)
        ],
        "disks": [{"target": d.target, "vdev": d.vdev, "mode": d.mode} for d in cfg.disks],
        "start_time": sim.ctx.now,
    }
    sim.domains.append(dom)  # domids only grow, so the list stays in domid order
    sim.host["next_domid"] = domid + 1
    sim.ctx.notes.append(f"created {cfg.name} as domain {domid} with {cfg.memory_mb} MiB")
    if sim.tool == "xm":
        return 0, f'Using config file "{path}".\nStarted domain {cfg.name} (id={domid})\n', ""
    return 0, "", said


def _random_mac(host: str, name: str, devid: int) -> str:
    # "Random" in Xen's OUI, but stable, so the lab's state stays reproducible.
    digest = uuidlib.uuid5(_UUID_NAMESPACE, f"{host}/{name}/{devid}").bytes
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in (digest[0] & 0x7F, digest[1], digest[2]))


# -- mem-set ---------------------------------------------------------------------------------


def parse_mem_size_kb(text: str, default_unit: str = "m") -> int | None:
    """xl's parse_mem_size_kb: a number with at most one unit letter (t g m k b); a bare
    number is MiB (the code, not the man page)."""
    match = re.fullmatch(r"(\d+)([tTgGmMkKbB]?)", text.strip())
    if not match:
        return None
    number, unit = int(match.group(1)), (match.group(2) or default_unit).lower()
    shift = {"t": 30, "g": 20, "m": 10, "k": 0}
    return number >> 10 if unit == "b" else number << shift[unit]


def cmd_mem_set(sim: _Sim, args: list[str]) -> ToolResult:
    if len(args) != 2:
        return _usage(sim, "mem-set", "<Domain> <MemMB>")
    qualifier, size = args
    dom = sim.lookup(qualifier)
    if dom is None and not (sim.tool == "xl" and qualifier.isdigit()):
        return sim.missing(qualifier)
    kb = parse_mem_size_kb(size)
    if kb is None:
        if sim.tool == "xm":
            return 1, "", f"Error: Invalid memory size: {size}\n"
        return 1, "", f"invalid memory size: {size}\n"
    domid = dom["domid"] if dom else int(qualifier)
    cannot = f"cannot set domid {domid} dynamic max memory to : {size}\n"
    where = "libxl: error: libxl_mem.c:{}:libxl_set_memory_target: "
    if dom is None:
        return 1, "", f"{where.format(289)}Domain {domid}:Cannot get domain info\n{cannot}"
    if domid == 0 and kb < LIBXL_MIN_DOM0_MEM_KB:
        if sim.tool == "xm":
            return 1, "", f"Error: Cannot set dom0 memory below {LIBXL_MIN_DOM0_MEM_KB // 1024} MiB\n"
        return 1, "", f"{where.format(311)}New target {kb} for dom0 is below the minimum threshold\n{cannot}"
    new_mb = kb // 1024
    if new_mb > int(dom.get("max_memory_mb", dom["memory_mb"])):
        if sim.tool == "xm":
            return 1, "", "Error: memory_dynamic_max must be less than or equal to memory_static_max\n"
        return (
            1,
            "",
            (
                f"{where.format(327)}Domain {domid}:memory_dynamic_max must be less than or equal to "
                f"memory_static_max\n{cannot}"
            ),
        )
    grow_mb = new_mb - int(dom["memory_mb"])
    if grow_mb > sim.free_mb():
        # Lab-only refusal: real Xen sets the target and the balloon driver simply stalls
        # short of it. The lab refuses so its accounting (sum <= total) always holds.
        free_kb = sim.free_mb() * 1024
        text = (
            f"lab: mem-set refused: domain {domid} would need {grow_mb * 1024} KiB more, only {free_kb} KiB "
            "free (a real dom0 sets the target and the guest's balloon driver stalls short of it)\n"
        )
        if sim.tool == "xm":
            return 1, "", f"Error: {text}"
        return 1, "", f"{text}{cannot}"
    dom["memory_mb"] = new_mb
    sim.ctx.notes.append(f"memory of {dom['name']} set to {new_mb} MiB")
    return 0, "", ""


# -- shutdown, destroy ------------------------------------------------------------------------


def _remove(sim: _Sim, dom: dict, how: str) -> None:
    sim.domains.remove(dom)
    sim.ctx.notes.append(f"{how} {dom['name']} (domain {dom['domid']}), {dom['memory_mb']} MiB freed")


def cmd_shutdown(sim: _Sim, args: list[str]) -> ToolResult:
    parsed = _options(args, "awFHh")
    if isinstance(parsed, str):
        return _usage(sim, "shutdown", "[-a|-w] <Domain>")
    opts, names = parsed
    wait = "w" in opts
    if "a" in opts:
        targets = [dom for dom in sim.domains if dom["domid"] != 0]
    elif len(names) == 1:
        dom = sim.lookup(names[0])
        if dom is None:
            if sim.tool == "xl" and names[0].isdigit():
                return 1, "", f"Shutting down domain {names[0]}\nshutdown failed (rc=-21)\n"
            return sim.missing(names[0])
        targets = [dom]
    elif sim.tool == "xl":
        return 1, "", "You must specify -a or a domain id.\n"
    else:
        return _usage(sim, "shutdown", "[-a|-w] <Domain>")
    if any(dom["domid"] == 0 for dom in targets):
        # Lab-only: a real dom0 would take the whole host down; the lab never does.
        if sim.tool == "xm":
            return 1, "", "Error: Cannot shut down privileged domain 0\n"
        return 1, "", "Shutting down domain 0\nshutdown failed (rc=-6)\n"
    out, err = [], []
    for dom in targets:
        err.append(f"Shutting down domain {dom['domid']}")
    if wait and sim.tool == "xl":
        err.append(f"Waiting for {len(targets)} domains")
    for dom in targets:
        _remove(sim, dom, "shut down")
        if wait:
            if sim.tool == "xm":
                out.append(f"Domain {dom['name']} terminated")
            else:
                err.append(f"Domain {dom['domid']} has been shut down, reason code 0")
    if sim.tool == "xm":
        err = []  # xm shutdown says nothing on stderr
    return 0, "".join(f"{line}\n" for line in out), "".join(f"{line}\n" for line in err)


def cmd_destroy(sim: _Sim, args: list[str]) -> ToolResult:
    parsed = _options(args, "f")
    if isinstance(parsed, str) or len(parsed[1]) != 1:
        return _usage(sim, "destroy", "<Domain>")
    qualifier = parsed[1][0]
    dom = sim.lookup(qualifier)
    if dom is None:
        if sim.tool == "xl" and qualifier.isdigit():
            n = qualifier
            return (
                1,
                "",
                (
                    f"libxl: error: libxl_domain.c:1182:libxl__destroy_domid: Domain {n}:Non-existant domain\n"
                    f"libxl: error: libxl_domain.c:1136:domain_destroy_callback: Domain {n}:Unable to destroy guest\n"
                    f"libxl: error: libxl_domain.c:1063:domain_destroy_cb: Domain {n}:Destruction of domain failed\n"
                    "destroy failed (rc=-21)\n"
                ),
            )
        return sim.missing(qualifier)
    if dom["domid"] == 0:
        # Even with -f the lab will not destroy its dom0.
        if sim.tool == "xm":
            return 1, "", "Error: Cannot destroy privileged domain 0\n"
        return (
            1,
            "",
            (
                "Not destroying domain 0; use -f to force.\n"
                "This can only be done when using a disaggregated hardware domain and toolstack.\n"
            ),
        )
    _remove(sim, dom, "destroyed")
    return 0, "", ""


# -- entry points ------------------------------------------------------------------------------

Command = Callable[[_Sim, list[str]], ToolResult]
_COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "li": cmd_list,
    "info": cmd_info,
    "create": cmd_create,
    "mem-set": cmd_mem_set,
    "shutdown": cmd_shutdown,
    "destroy": cmd_destroy,
    "uptime": cmd_uptime,
}


def _run(ctx: ToolContext, argv: list[str], tool: str) -> ToolResult:
    host = ctx.state.get("hosts", {}).get(ctx.host)
    if not host or host.get("kind") != "dom0" or host.get("toolstack", "xl") != tool:
        # An xm host (Xen < 4.5) has no xl, and xm was removed in Xen 4.5.
        return 127, "", f"bash: {tool}: command not found\n"
    args = list(argv[1:])
    while args and args[0].startswith("-") and tool == "xl":
        args.pop(0)  # global options: -v, -N, -f, -t, -T
    sim = _Sim(ctx, tool)
    if not args:
        return _usage(sim, "<subcommand>", "[args]")
    command = _COMMANDS.get(args[0])
    if command is None:
        if tool == "xm":
            return 1, "", f"Error: Subcommand {args[0]} not found!\n"
        return 1, "", "command not implemented\n"
    status, out, err = command(sim, args[1:])
    if tool == "xm" and fmt.version_tuple(str(host.get("xen_version", "3.2"))) >= (4, 2):
        err = "WARNING: xend/xm is deprecated.\n" + err
    return status, out, err


def xl(ctx: ToolContext, argv: list[str]) -> ToolResult:
    return _run(ctx, argv, "xl")


def xm(ctx: ToolContext, argv: list[str]) -> ToolResult:
    return _run(ctx, argv, "xm")


REGISTRY_ENTRIES = {"xl": xl, "xm": xm}
