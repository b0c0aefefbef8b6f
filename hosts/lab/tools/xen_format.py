"""What the simulated `xl`/`xm` print: the exact layouts of xen-storage-cli-reference.md §1.

Pure functions of the lab state (a dom0's dict and its domain dicts, schema in base.py).
The commands themselves, and what they refuse, are in xen_tool.py.
"""

from __future__ import annotations

import json
import re
import zlib

from hosts.lab.tools.xend_sxp import prettyprint

XL_LIST_HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
# xm's own format string, kept verbatim.
XM_LIST_HEADER = "%-40s %5s %5s %5s %10s %9s" % ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")  # noqa: UP031


def xl_list_row(dom: dict) -> str:
    # printf("%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f", ...): a name over 40 chars pushes right.
    return (
        f"{dom['name']:<40} {dom['domid']:5d} {dom['memory_mb']:5d} {dom['vcpus']:5d}"
        f"     {dom['state']}  {dom['cpu_time']:8.1f}"
    )


def xm_list_row(dom: dict) -> str:
    # "%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s %(cpu_time)8.1f"
    return (
        f"{dom['name']:<40} {dom['domid']!s:>5} {dom['memory_mb']:5d} {dom['vcpus']:5d}"
        f" {dom['state']:>10} {dom['cpu_time']:8.1f}"
    )


def list_text(domains: list[dict], toolstack: str) -> str:
    if toolstack == "xm":
        return "\n".join([XM_LIST_HEADER, *map(xm_list_row, domains)]) + "\n"
    return "\n".join([XL_LIST_HEADER, *map(xl_list_row, domains)]) + "\n"


# -- list -l ---------------------------------------------------------------------------------


def _json_domain(dom: dict) -> dict:
    """Modern libxl's sparse JSON: fields equal to their default are left out."""
    disks = []
    for disk in dom.get("disks", ()):
        entry: dict = {"pdev_path": disk["target"], "vdev": disk["vdev"], "backend": "phy", "format": "raw"}
        if disk.get("script"):
            entry["script"] = disk["script"]
        if disk.get("mode", "w") == "w":
            entry["readwrite"] = 1  # default 0 (read-only) is omitted
        disks.append(entry)
    nics = [
        {"devid": devid, "mac": nic["mac"], "bridge": nic["bridge"], "script": "vif-bridge", "nictype": "vif"}
        for devid, nic in enumerate(dom.get("nics", ()))
    ]
    config: dict = {
        "c_info": {"type": "pv", "name": dom["name"], "uuid": dom.get("uuid"), "run_hotplug_scripts": "True"},
        "b_info": {
            "max_vcpus": dom["vcpus"],
            "avail_vcpus": list(range(dom["vcpus"])),
            "max_memkb": dom.get("max_memory_mb", dom["memory_mb"]) * 1024,
            "target_memkb": dom["memory_mb"] * 1024,
            "sched_params": {},
            "type.pv": {"bootloader": "pygrub"},
            "arch_arm": {},
        },
    }
    if disks:
        config["disks"] = disks
    if nics:
        config["nics"] = nics
    config["on_reboot"] = "restart"
    config["on_crash"] = "restart"
    return {"domid": dom["domid"], "config": config}


def list_long_json(domains: list[dict]) -> str:
    # libxl cannot retrieve Domain-0's config on most builds, so it is silently skipped.
    return json.dumps([_json_domain(dom) for dom in domains if dom["domid"] != 0], indent=4) + "\n"


def _sxp_xl(dom: dict) -> str:
    """xl's printf_info_sexp (tools/xl/xl_sxp.c, RELEASE-4.17.7) for a PV domain, tab-indented,
    unbalanced as xl prints it: ``(linux 0)`` comes closed, so the ``)`` after the image
    lines closes ``(image`` and the next one ``(domain``; the devices follow outside it and
    the last ``)`` closes nothing. NICs have no bridge and a MAC without colons."""
    bootloader = dom.get("bootloader", "pygrub")
    lines = [
        "(domain",
        f"\t(domid {dom['domid']})",
        "\t(create_info)",
        "\t(hvm 0)",
        "\t(hap <default>)",
        "\t(oos <default>)",
        "\t(ssidref 0)",
        f"\t(name {dom['name']})",
        f"\t(uuid {dom.get('uuid')})",
        "\t(xsdata (null))",
        "\t(platformdata (null))",
        "\t(build_info)",
        f"\t(max_vcpus {dom['vcpus']})",
        "\t(max_grant_frames 64)",
        "\t(max_maptrack_frames 1024)",
        "\t(tsc_mode default)",
        f"\t(max_memkb {dom.get('max_memory_mb', dom['memory_mb']) * 1024})",
        f"\t(target_memkb {dom['memory_mb'] * 1024})",
        "\t(nomigrate <default>)",
        *([f"\t(bootloader {bootloader})"] if bootloader else []),
        "\t(image",
        "\t\t(linux 0)",
        "\t\t\t(kernel (null))",
        "\t\t\t(cmdline (null))",
        "\t\t\t(ramdisk (null))",
        "\t\t\t(e820_host <default>)",
        "\t\t)",
        "\t)",
    ]
    for disk in dom.get("disks", ()):
        lines += [
            "\t(device",
            "\t\t(tap",
            "\t\t\t(backend_domid 0)",
            f"\t\t\t(frontend_domid {dom['domid']})",
            f"\t\t\t(physpath {disk['target']})",
            "\t\t\t(phystype 1)",
            f"\t\t\t(virtpath {disk['vdev']})",
            "\t\t\t(unpluggable 0)",
            f"\t\t\t(readwrite {1 if disk.get('mode', 'w') == 'w' else 0})",
            "\t\t\t(is_cdrom 0)",
            "\t\t)",
            "\t)",
        ]
    for devid, nic in enumerate(dom.get("nics", ())):
        lines += [
            "\t(device",
            "\t\t(vif",
            "\t\t\t(backend_domid 0)",
            f"\t\t\t(frontend_domid {dom['domid']})",
            f"\t\t\t(devid {devid})",
            "\t\t\t(mtu 1500)",
            "\t\t\t(model (null))",
            f"\t\t\t(mac {nic['mac'].replace(':', '')})",
            "\t\t)",
            "\t)",
        ]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _xend_sxpr(host_name: str, dom: dict) -> list:
    """XendConfig.to_sxp(domain) of a running domain, in the order of a real capture (the
    Ganeti fixture quoted in the reference, §1.2); device fields come from xend's
    netif/blkif getDeviceConfiguration (a Python 2 dict: their order is not fixed)."""
    domid = dom["domid"]
    sxpr: list = [
        "domain",
        ["domid", domid],
        ["cpu_weight", 256],
        ["cpu_cap", 0],
        ["bootloader", "/usr/bin/pygrub" if domid else ""],
        ["on_crash", "restart"],
        ["uuid", dom.get("uuid") or "00000000-0000-0000-0000-000000000000"],
        ["bootloader_args", ""],
        ["vcpus", dom["vcpus"]],
        ["name", dom["name"]],
        ["on_reboot", "restart"],
        ["on_poweroff", "destroy"],
        ["maxmem", dom.get("max_memory_mb", dom["memory_mb"])],
        ["memory", dom["memory_mb"]],
        ["shadow_memory", 0],
        ["features", ""],
        ["on_xend_start", "ignore"],
        ["on_xend_stop", "ignore"],
        ["start_time", 1357749308.05],
        ["cpu_time", float(dom["cpu_time"])],
        ["online_vcpus", dom["vcpus"]],
        ["image", ["linux", ["kernel", ""], ["notes", ["SUSPEND_CANCEL", 1]]]],
        ["status", 2],
        ["state", dom["state"]],
    ]
    for devid, nic in enumerate(dom.get("nics", ())):
        sxpr.append(
            [
                "device",
                [
                    "vif",
                    ["backend", 0],
                    ["script", "/etc/xen/scripts/vif-bridge"],
                    ["uuid", _uuid(host_name, dom["name"], f"vif{devid}")],
                    ["bridge", nic["bridge"]],
                    ["mac", nic["mac"]],
                ],
            ]
        )
    for index, disk in enumerate(dom.get("disks", ())):
        script = disk.get("script")
        uname = f"{script.removeprefix('block-')}:{disk['target']}" if script else f"phy:{disk['target']}"
        sxpr.append(
            [
                "device",
                [
                    "vbd",
                    ["protocol", "x86_64-abi"],
                    ["uuid", _uuid(host_name, dom["name"], f"vbd{index}")],
                    ["bootable", 1 if index == 0 else 0],
                    ["dev", f"{disk['vdev']}:disk"],
                    ["uname", uname],
                    ["mode", disk.get("mode", "w")],
                    ["backend", 0],
                    ["VDI", ""],
                ],
            ]
        )
    return sxpr


def _uuid(host_name: str, name: str, what: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab:{host_name}/{name}/{what}"))


def list_long_sxp(domains: list[dict], toolstack: str, host_name: str = "") -> str:
    if toolstack == "xm":
        # xm_list: map(PrettyPrint.prettyprint, doms), Domain-0 included.
        return "".join(prettyprint(_xend_sxpr(host_name, dom)) for dom in domains)
    return "".join(_sxp_xl(dom) for dom in domains if dom["domid"] != 0)


# -- info ------------------------------------------------------------------------------------


def split_version(version: str) -> tuple[str, str, str]:
    """ "4.17.3" -> ("4", "17", ".3"): xen_major, xen_minor, xen_extra."""
    match = re.match(r"^(\d+)\.(\d+)(.*)$", version)
    return match.groups() if match else ("4", "17", ".3")  # type: ignore[return-value]


def version_tuple(version: str) -> tuple[int, int]:
    major, minor, _ = split_version(version)
    return int(major), int(minor)


def info_text(host_name: str, host: dict, free_mb: int, toolstack: str) -> str:
    version = str(host.get("xen_version", "4.17.3"))
    major, minor, extra = split_version(version)
    cpus = int(host.get("nr_cpus", 4))
    old = toolstack == "xm"  # SLES 10-era xend: a 2.6.16 kernel, fewer lines
    cmdline = "placeholder dom0_mem=256M,max:256M" if host.get("autoballoon") is False else "placeholder"
    pairs: list[tuple[str, object]] = [
        ("host", host_name),
        ("release", "2.6.16.60-0.21-xen" if old else "6.1.0-18-amd64"),
        (
            "version",
            "#1 SMP Tue Aug 5 12:41:36 UTC 2008" if old else "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1",
        ),
        ("machine", "x86_64"),
        ("nr_cpus", cpus),
        *([] if old else [("max_cpu_id", cpus - 1)]),
        ("nr_nodes", 1),
        ("cores_per_socket", cpus),
        ("threads_per_core", 1),
        ("cpu_mhz", 2992 if old else "2992.968"),
        ("hw_caps", "bfebfbff:20000800:00000000:00000140:0004e3bd:00000000:00000001:00000000"),
        ("virt_caps", "hvm" if old else "pv hvm hvm_directio pv_directio hap shadow"),
        ("total_memory", int(host["total_memory_mb"])),
        ("free_memory", free_mb),
    ]
    if not old:
        pairs += [
            ("sharing_freed_memory", 0),
            ("sharing_used_memory", 0),
            ("outstanding_claims", 0),
            ("free_cpus", 0),
        ]
    pairs += [("xen_major", major), ("xen_minor", minor), ("xen_extra", extra)]
    if not old:
        pairs.append(("xen_version", version))
    pairs += [
        ("xen_caps", "xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
        ("xen_scheduler", "credit" if old else "credit2"),
        ("xen_pagesize", 4096),
        ("platform_params", "virt_start=0xffff800000000000"),
        ("xen_changeset", "(none)" if old else ""),
    ]
    if not old:
        pairs.append(("xen_commandline", cmdline))
    pairs += [
        (
            "cc_compiler",
            "gcc version 4.1.2 20070115 (SUSE Linux)"
            if old
            else "x86_64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0",
        ),
        ("cc_compile_by", "abuild" if old else "pkg-xen-devel"),
        ("cc_compile_domain", "suse.de" if old else "lists.alioth.debian.org"),
        ("cc_compile_date", "Tue Aug  5 12:30:15 UTC 2008" if old else "Thu Feb  1 10:00:00 UTC 2024"),
    ]
    if not old:
        pairs.append(("build_id", "b6d0c40f3a14c4c38e8f5d1a7b2e9d0c4f1a2b3c"))
    pairs.append(("xend_config_format", 4))
    # xl: "%-23s: %s"; xm: print "%-23s:" % key, value (print's comma adds the space).
    return "".join(f"{key:<23}: {value}".rstrip() + "\n" for key, value in pairs)


# -- what `create` says when it refuses -------------------------------------------------------
# xl: libxl's log lines, "libxl: error: <file>:<line>:<function>: Domain <N>:<message>"
# (libxl_internal.c libxl__logv), with file:line of RELEASE-4.17.7 (the driver never matches
# on them), and exit 3 (create_domain returns ERROR_FAIL; main_create returns -rc). libxc's
# panics are "xc: error: panic: <file>:<line>: <message>: <error code>" (xg_dom_core.c
# xc_dom_panic_func, xc_private.c xc_reportv). xm: "Error: <xend's message>", exit 1.

_DESTROYED = (
    "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain {d}:Non-existant domain\n"
    "libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain {d}:Unable to destroy guest\n"
    "libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain {d}:Destruction of domain failed\n"
)
_REBUILD = (
    "libxl: error: libxl_create.c:1638:domcreate_rebuild_done: Domain {d}:cannot (re-)build domain: -3\n"
)


def refuse_memory(tool: str, autoballoon: bool, need_mb: int, free_mb: int, domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend balloon.py free()
        return 1, (
            "Error: Not enough free memory and enable-dom0-ballooning is False, so I cannot release any more.  "
            f"I need {need_mb * 1024} KiB but only have {free_mb * 1024}.\n"
        )
    if autoballoon:
        # xl_vmcontrol.c create_domain: freemem() gave up before any domain was made.
        return 3, "failed to free memory for the domain\n"
    # autoballoon off (dom0_mem on the Xen command line): libxc fails the build
    # (xg_dom_boot.c xc_dom_boot_mem_init, libxl_dom.c libxl__build_dom).
    return 3, (
        "xc: error: panic: xg_dom_boot.c:119: xc_dom_boot_mem_init: can't allocate low memory for domain: "
        "Out of memory\n"
        "libxl: error: libxl_dom.c:586:libxl__build_dom: xc_dom_boot_mem_init failed: Cannot allocate memory\n"
        + _REBUILD.format(d=domid)
        + _DESTROYED.format(d=domid)
    )


def refuse_duplicate(tool: str, name: str, domid: int, other_domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend XendDomainInfo._checkName
        return 1, f"Error: VM name '{name}' already exists as domain {other_domid}\n"
    # libxl_domain.c libxl__domain_rename, then libxl_create.c initiate_domain_create
    return 3, (
        f'libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain {domid}:Domain with name "{name}" '
        "already exists.\n"
        f"libxl: error: libxl_create.c:1294:initiate_domain_create: Domain {domid}:cannot make domain: -6\n"
    )


def _vbd_number(vdev: str) -> int:
    # xvd<letter><partition>: major 202, minor = disk*16 + partition (xend prints this number).
    match = re.fullmatch(r"xvd([a-z])(\d*)", vdev)
    return 202 * 256 + ((ord(match.group(1)) - 97) * 16 + int(match.group(2) or 0)) if match else 51712


def refuse_disk(tool: str, target: str, vdev: str, index: int, domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend DevController.waitForDevice (status Error) with hotplug/Linux/block's fatal message
        return (
            1,
            f"Error: Device {_vbd_number(vdev)} (vbd) could not be connected. {target} does not exist.\n",
        )
    # libxl_device.c libxl__device_disk_set_backend (LOGE: strerror appended), then
    # libxl_create.c initiate_domain_create
    return 3, (
        f"libxl: error: libxl_device.c:455:libxl__device_disk_set_backend: Disk vdev={vdev} "
        f"failed to stat: {target}: No such file or directory\n"
        f"libxl: error: libxl_create.c:1316:initiate_domain_create: Domain {domid}:Unable to set disk "
        f"defaults for disk {index}\n"
    )


def refuse_bridge(tool: str, bridge: str, devid: int, domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend DevController.waitForDevice with hotplug/Linux/vif-bridge's fatal message
        return (
            1,
            f"Error: Device {devid} (vif) could not be connected. Could not find bridge device {bridge}\n",
        )
    # libxl_exec.c libxl_report_child_exitstatus, libxl_device.c device_hotplug_child_death_cb,
    # libxl_create.c domcreate_attach_devices ("unable to add %s devices")
    return 3, (
        "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: /etc/xen/scripts/vif-bridge online "
        f"[{4000 + domid}] exited with error status 1\n"
        f"libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: script: Could not find bridge device "
        f"{bridge}\n"
        f"libxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain {domid}:unable to add vif devices\n"
        + _DESTROYED.format(d=domid)
    )


def refuse_kernel(tool: str, kernel: str, domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend image.py ImageHandler.configure
        return 1, f"Error: Kernel image does not exist: {kernel}\n"
    # xg_dom_core.c xc_dom_malloc_filemap (panic, XC_INTERNAL_ERROR), libxl_dom.c libxl__build_pv
    return 3, (
        f"xc: error: panic: xg_dom_core.c:205: failed to open file '{kernel}': No such file or directory: "
        "Internal error\n"
        "libxl: error: libxl_dom.c:646:libxl__build_pv: xc_dom_kernel_file failed: No such file or directory\n"
        + _REBUILD.format(d=domid)
    )


def refuse_bootloader(tool: str, bootloader: str, domid: int) -> tuple[int, str]:
    if tool == "xm":
        # xend XendBootloader.bootloader
        return 1, "Error: Bootloader isn't executable\n"
    # libxl_bootloader.c bootloader_finished, libxl_exec.c libxl_report_child_exitstatus
    return 3, (
        f"libxl: error: libxl_bootloader.c:768:bootloader_finished: Domain {domid}:bootloader failed - consult "
        f"logfile /var/log/xen/bootloader.{domid}.log\n"
        f"libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: bootloader [{5000 + domid}] exited with "
        "error status 1\n" + _REBUILD.format(d=domid)
    )


# -- uptime ----------------------------------------------------------------------------------


def _uptime_str(seconds: float) -> str:
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:2d}:{minutes:02d}:{secs:02d}"
    return f"{days} day{'s' if days != 1 else ''}, {clock}" if days else clock


def started_at(host_name: str, dom: dict, now: float) -> float:
    """When the domain started: recorded by create; for seeded domains a stable made-up
    time 1-31 days ago, so the output looks lived-in and stays reproducible."""
    if dom.get("start_time") is not None:
        return float(dom["start_time"])
    return now - 86400 - zlib.crc32(f"{host_name}/{dom['name']}".encode()) % (30 * 86400)


def uptime_text(host_name: str, domains: list[dict], now: float, toolstack: str) -> str:
    if toolstack == "xm":
        lines = ["%-33s %4s %s " % ("Name", "ID", "Uptime")]  # noqa: UP031 (xm's format, trailing space)
        lines += [
            f"{dom['name']:<32} {dom['domid']!s:>5} {_uptime_str(now - started_at(host_name, dom, now))}"
            for dom in domains
        ]
    else:
        lines = ["%-33s %4s %s" % ("Name", "ID", "Uptime")]  # noqa: UP031 (xl's format)
        lines += [
            f"{dom['name']:<33} {dom['domid']:4d} {_uptime_str(now - started_at(host_name, dom, now))}"
            for dom in domains
        ]
    return "\n".join(lines) + "\n"
