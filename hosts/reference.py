"""The reference estate of the thesis (seed digest), as plain data.

One source of truth for three consumers: ``load_reference_estate`` (the inventory),
the lab (the simulated estate it serves over SSH) and the tests. Plain dicts and
tuples only, so the lab can import it without Django.

Longer than 400 lines on purpose: it is the thesis' data, the single source the lab, the
inventory loader and the tests read.
"""

from __future__ import annotations

import os
import re

# Loopback addresses of the simulated estate (the lab). A real estate overrides them
# with DRPORTAL_ADDR_<NAME> variables, e.g. DRPORTAL_ADDR_XENKA01=10.96.180.11.
LAB_PORT = int(os.environ.get("DRPORTAL_LAB_PORT", "2222"))

SITES = (
    {"code": "WSL", "name": "Wiesloch", "role": "primary"},
    {"code": "KA", "name": "Karlsruhe", "role": "alternate"},
)

ARRAYS = (
    {"name": "eva-wsl", "site": "WSL", "kind": "eva-ca", "model": "HP EVA8000", "address": "127.0.1.2"},
    {"name": "eva-ka", "site": "KA", "kind": "eva-ca", "model": "HP EVA8000", "address": "127.0.2.2"},
)

BRIDGES = ("xenbr0", "xenbr1")
# The isolated bridge of each dom0 that drills attach their clones to (no uplink).
DRILL_BRIDGE = "xenbr-drill"

HOSTS = (
    {
        "name": "xenwsl01",
        "site": "WSL",
        "address": "127.0.1.1",
        "ram_mb": 4096,
        "cpus": 4,
        "toolstack": "xl",
        "bridges": (*BRIDGES, DRILL_BRIDGE),
        "dom0_normal_mb": 256,
        "dom0_dr_mb": 128,
    },
    {
        "name": "xenka01",
        "site": "KA",
        "address": "127.0.2.1",
        "ram_mb": 4096,
        "cpus": 4,
        "toolstack": "xl",
        "bridges": (*BRIDGES, DRILL_BRIDGE),
        "dom0_normal_mb": 256,
        "dom0_dr_mb": 128,
    },
)

# Thesis tables 3, 4 and 5. ``tier`` 1 starts first; ``depends_on`` must be running first.
# ``address``: where the VM's services answer (its functional checks go there); in the lab
# a loopback address per VM, 127.0.3.x, served while the domain runs on any dom0.
VMS = (
    {
        "name": "dns-xen01",
        "address": "127.0.3.5",
        "home": "xenwsl01",
        "normal_mb": 512,
        "dr_mb": 256,
        "storage_gb": 10,
        "vcpus": 1,
        "tier": 1,
        "depends_on": (),
        "macs": ("00:16:3e:10:05:01", "00:16:3e:11:05:01"),
        "description": "DHCP and DNS for outstations.",
    },
    {
        "name": "proxy-xen01",
        "address": "127.0.3.4",
        "home": "xenwsl01",
        "normal_mb": 1792,
        "dr_mb": 512,
        "storage_gb": 10,
        "vcpus": 2,
        "tier": 2,
        "depends_on": ("dns-xen01",),
        "macs": ("00:16:3e:10:04:01", "00:16:3e:11:04:01"),
        "description": "Proxy chain (Squid) for the outstations.",
    },
    {
        "name": "rsync-xen01",
        "address": "127.0.3.6",
        "home": "xenwsl01",
        "normal_mb": 1024,
        "dr_mb": 512,
        "storage_gb": 15,
        "vcpus": 1,
        "tier": 3,
        "depends_on": ("dns-xen01",),
        "macs": ("00:16:3e:10:06:01", "00:16:3e:11:06:01"),
        "description": "Software package / image distribution to branch servers, uptime reporting.",
    },
    {
        "name": "lws-xen01",
        "address": "127.0.3.1",
        "home": "xenka01",
        "normal_mb": 512,
        "dr_mb": 512,
        "storage_gb": 20,
        "vcpus": 1,
        "tier": 2,
        "depends_on": (),
        "macs": ("00:16:3e:10:01:01", "00:16:3e:11:01:01"),
        "description": (
            "Linux Web Services: the statusboard of branch incidents, Typo3 admin pages, rsync restarts, "
            "Samba password reset, Subversion (Apache, MySQL, PHP over HTTPS)."
        ),
    },
    {
        "name": "dasi-xen01",
        "address": "127.0.3.2",
        "home": "xenka01",
        "normal_mb": 2048,
        "dr_mb": 1024,
        "storage_gb": 715,
        "vcpus": 2,
        "tier": 4,
        "depends_on": (),
        "macs": ("00:16:3e:10:02:01", "00:16:3e:11:02:01"),
        "description": "File transfer and backup of the branch servers' group shares; group shares for mobile users.",
    },
    {
        "name": "tomcat-xen01",
        "address": "127.0.3.3",
        "home": "xenka01",
        "normal_mb": 768,
        "dr_mb": 512,
        "storage_gb": 15,
        "vcpus": 1,
        "tier": 3,
        "depends_on": (),
        "macs": ("00:16:3e:10:03:01", "00:16:3e:11:03:01"),
        "description": "Printer database for the branches (Tomcat on port 8081, MySQL db dbprinters), Notes IDs.",
    },
)

NIC_ROLES = ("user", "backup")  # xenbr0 = user LAN, xenbr1 = backup LAN


def vm_short(name: str) -> str:
    """``proxy-xen01`` -> ``proxy01``: the volume-group stem the thesis uses (vg_lws01)."""
    stem, _, number = name.partition("-xen")
    return f"{stem}{number}"


def vm_config_path(name: str) -> str:
    return f"/etc/xen/vm/{name}"


def vm_disks(name: str) -> tuple[dict, ...]:
    return ({"target": f"/dev/vg_{vm_short(name)}/lvol1", "vdev": "xvda1", "mode": "w"},)


def vm_nics(vm: dict) -> tuple[dict, ...]:
    return tuple(
        {"mac": mac, "bridge": bridge, "role": role}
        for mac, bridge, role in zip(vm["macs"], BRIDGES, NIC_ROLES, strict=True)
    )


def sssu_login_file(system: str) -> str:
    """Where the reference estate's management hosts (in the lab: the array hosts) keep the
    root-only SSSU login script of an array (SELECT MANAGER ... PASSWORD=...)."""
    return f"/etc/drportal/sssu/{system}.login"


def dr_group_name(vm_name: str) -> str:
    return f"DRG-{vm_name}"


def dr_groups() -> tuple[dict, ...]:
    """One DR group per VM (one LUN each). WSL-homed VMs replicate WSL -> KA
    asynchronously; KA-homed VMs sit on the KA array with no replica (seed digest)."""
    site_of_host = {h["name"]: h["site"] for h in HOSTS}
    array_of_site = {a["site"]: a["name"] for a in ARRAYS}
    groups = []
    for vm in VMS:
        home_site = site_of_host[vm["home"]]
        replicated = home_site == "WSL"
        groups.append(
            {
                "name": dr_group_name(vm["name"]),
                "source_array": array_of_site[home_site],
                "target_array": array_of_site["KA"] if replicated else None,
                "mode": "async",
                "vms": (vm["name"],),
            }
        )
    return tuple(groups)


PROFILES = ("normal operation", "WSL lost")


# -- services and functional checks (thesis tables 3.1 and 3.2) ------------------------------
#
# What each VM serves on its address, as the lab plays it, and the checks the reference
# estate gets. Ports below 1024 need root to bind: a lab run by a normal user sets
# DRPORTAL_LAB_SERVICE_PORT_OFFSET (e.g. 10000) and those ports move up by it (443 ->
# 10443, 25 -> 10025). The lab and the loader read the same variable, so checks follow.
SERVICE_PORT_OFFSET = int(os.environ.get("DRPORTAL_LAB_SERVICE_PORT_OFFSET", "0"))


def service_port(port: int) -> int:
    return port + SERVICE_PORT_OFFSET if port < 1024 else port


_SVN_GREETING = (
    "( success ( 2 2 ( ) ( edit-pipeline svndiff1 absent-entries depth mergeinfo log-revprops ) ) ) "
)


def _page(title: str, text: str) -> str:
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>\n"


# Per VM: ``ports`` (kind http, https or tcp; http(s) serve ``pages`` {path: body} with
# status 200, or ``status``/``body`` for every path; tcp sends ``banner`` if any), ``units``
# (systemd units and the ports they serve: a unit is active while none of its ports is
# down), ``files`` (what ``cat``/``test`` see on the VM). Every VM also has SSH.
SERVICES: dict[str, dict] = {
    "lws-xen01": {
        "ports": (
            {
                "port": 443,
                "kind": "https",
                "pages": {
                    "/": _page("LWS - Linux Web Services", "Typo3 admin pages, rsync restarts, Subversion."),
                    "/statusboard/": _page("Statusboard", "Open branch incidents: 3. New incident..."),
                    "/sambapw/": _page("Samba password reset", "Branch user: [     ] Reset password"),
                    "/rollout/": _page("Rollout", "Software rollout to the branch servers."),
                },
            },
            {"port": 25, "kind": "tcp", "banner": "220 lws-xen01 ESMTP Postfix\r\n"},
            {"port": 873, "kind": "tcp", "banner": "@RSYNCD: 30.0\n"},
            {"port": 3690, "kind": "tcp", "banner": _SVN_GREETING},
            {"port": 3306, "kind": "tcp"},
        ),
        "units": {
            "apache2": (443,),
            "postfix": (25,),
            "rsync": (873,),
            "svnserve": (3690,),
            "mysql": (3306,),
        },
        "files": {
            "/etc/statusboard/config.php": "<?php\n$db_host = 'localhost';\n$db_name = 'statusboard';\n$mail_relay = 'localhost:25';\n",
            "/srv/svn/repos/format": "5\n",
        },
    },
    "dasi-xen01": {
        "ports": (
            {"port": 445, "kind": "tcp"},
            {"port": 873, "kind": "tcp", "banner": "@RSYNCD: 30.0\n"},
        ),
        "units": {"smb": (445,), "rsync": (873,)},
        "files": {"/etc/samba/smb.conf": "[groupshares]\n   path = /srv/groupshares\n   read only = no\n"},
    },
    "tomcat-xen01": {
        "ports": (
            {
                "port": 8081,
                "kind": "http",
                "pages": {
                    "/dbprinters/": _page("dbprinters", "Printer database for the branches: 412 printers.")
                },
            },
            {"port": 80, "kind": "http", "pages": {"/notesids/": _page("Notes IDs", "user.id admin.id")}},
            {"port": 445, "kind": "tcp"},
            {"port": 3306, "kind": "tcp"},
        ),
        "units": {"tomcat": (8081,), "apache2": (80,), "smb": (445,), "mysql": (3306,)},
        "files": {},
    },
    "proxy-xen01": {
        "ports": (
            {
                "port": 3128,
                "kind": "http",
                "status": 400,
                "body": _page("ERROR: The requested URL could not be retrieved", "ERR_INVALID_URL (squid)"),
            },
        ),
        "units": {"squid": (3128,)},
        "files": {},
    },
    "dns-xen01": {
        "ports": ({"port": 53, "kind": "tcp"},),
        "units": {"named": (53,), "dhcpd": ()},
        "files": {},
    },
    "rsync-xen01": {
        "ports": ({"port": 873, "kind": "tcp", "banner": "@RSYNCD: 30.0\n"},),
        "units": {"rsync": (873,)},
        "files": {"/etc/rsyncd.conf": "[images]\n   path = /srv/images\n   read only = yes\n"},
    },
}


def vm_services(vm_name: str) -> dict:
    """A VM's services with the port offset applied, as plain JSON-able data (the lab's state)."""
    spec = SERVICES[vm_name]
    address = next(vm["address"] for vm in VMS if vm["name"] == vm_name)
    return {
        "address": address,
        "ports": [{**entry, "port": service_port(entry["port"])} for entry in spec["ports"]],
        "units": {unit: [service_port(port) for port in ports] for unit, ports in spec["units"].items()},
        "files": dict(spec["files"]),
        "down": [],
        "key_generation": 0,
    }


# Functional test plans. URLs may use ``{address}`` for the VM's service address (so the
# checks follow the inventory). Results are ok, down or note (thesis: "firewall opening
# needed"). The lab's certificate is self-signed, hence verify_tls False here; a real
# estate with a trusted certificate turns verification on. Thesis 3.2 records the printer
# DB as "down": `lab fault tomcat-xen01 service-down 8081` replays that.
CHECKS: tuple[dict, ...] = (
    # Tabelle 3.1: lws-xen01
    {
        "vm": "lws-xen01",
        "name": "LWS reachable with SSL",
        "kind": "http",
        "url": "https://{address}/",
        "expect_text": "Linux Web Services",
        "verify_tls": False,
    },
    {
        "vm": "lws-xen01",
        "name": "Statusboard reachable",
        "kind": "http",
        "url": "https://{address}/statusboard/",
        "expect_text": "Statusboard",
        "verify_tls": False,
    },
    {
        "vm": "lws-xen01",
        "name": "Incident mail: SMTP relay on port 25",
        "kind": "tcp",
        "port": 25,
        "expect_text": "220 ",
    },
    {"vm": "lws-xen01", "name": "rsync restart works", "kind": "ssh", "command": "systemctl restart rsync"},
    {
        "vm": "lws-xen01",
        "name": "Samba password reset page",
        "kind": "http",
        "url": "https://{address}/sambapw/",
        "expect_text": "Samba password reset",
        "verify_tls": False,
    },
    {
        "vm": "lws-xen01",
        "name": "Rollout web page",
        "kind": "http",
        "url": "https://{address}/rollout/",
        "expect_text": "Rollout",
        "verify_tls": False,
    },
    {
        "vm": "lws-xen01",
        "name": "Statusboard configured",
        "kind": "ssh",
        "command": "test -f /etc/statusboard/config.php",
    },
    {
        "vm": "lws-xen01",
        "name": "Subversion active",
        "kind": "ssh",
        "command": "svn info svn://localhost/repos",
        "expect_text": "Revision:",
    },
    # Tabelle 3.2: tomcat-xen01
    {
        "vm": "tomcat-xen01",
        "name": "Printer DB reachable",
        "kind": "http",
        "url": "http://{address}:8081/dbprinters/",
        "expect_text": "Printer database",
    },
    {
        "vm": "tomcat-xen01",
        "name": "Notes IDs by wget from the branches",
        "kind": "http",
        "url": "http://{address}/notesids/",
        "expect_text": "user.id",
    },
    {"vm": "tomcat-xen01", "name": "Notes ID transfer via Samba mapping", "kind": "tcp", "port": 445},
    # The other VMs: one or two simple checks each.
    {"vm": "dasi-xen01", "name": "Group shares (Samba)", "kind": "tcp", "port": 445},
    {
        "vm": "dasi-xen01",
        "name": "Backup transfer (rsync)",
        "kind": "tcp",
        "port": 873,
        "expect_text": "@RSYNCD",
    },
    {
        "vm": "proxy-xen01",
        "name": "Squid answers for the outstations",
        "kind": "http",
        "url": "http://{address}:3128/",
        "expect_status": 400,
        "expect_text": "ERR_INVALID_URL",
    },
    {"vm": "dns-xen01", "name": "DNS (53/tcp)", "kind": "tcp", "port": 53},
    {"vm": "dns-xen01", "name": "DHCP server active", "kind": "ssh", "command": "systemctl is-active dhcpd"},
    {"vm": "rsync-xen01", "name": "rsync daemon", "kind": "tcp", "port": 873, "expect_text": "@RSYNCD"},
    {
        "vm": "rsync-xen01",
        "name": "rsync installed",
        "kind": "ssh",
        "command": "rsync --version",
        "expect_text": "rsync  version",
    },
)

_CHECK_DEFAULTS = {
    "url": "",
    "expect_status": 200,
    "expect_text": "",
    "verify_tls": True,
    "port": None,
    "command": "",
    "expect_exit": 0,
    "timeout_s": 5.0,
}
_URL_PORT = re.compile(r"^(?P<scheme>https?)://(?P<host>[^/:]+)(?::(?P<port>\d+))?(?P<rest>/.*)?$")


def _offset_url(url: str) -> str:
    match = _URL_PORT.match(url)
    if not match:
        return url
    port = int(match["port"] or (443 if match["scheme"] == "https" else 80))
    moved = service_port(port)
    if moved == port:
        return url
    return f"{match['scheme']}://{match['host']}:{moved}{match['rest'] or '/'}"


def functional_checks() -> tuple[dict, ...]:
    """CHECKS with every field filled in and the port offset applied (what the loader stores)."""
    checks = []
    for check in CHECKS:
        full = {**_CHECK_DEFAULTS, **check}
        full["url"] = _offset_url(full["url"])
        if full["port"] is not None:
            full["port"] = service_port(full["port"])
        checks.append(full)
    return tuple(checks)


def vm_drill_address(name: str) -> str:
    """Where a VM's drill clone answers in the lab: 127.0.4.x beside its 127.0.3.x."""
    address = next(v["address"] for v in VMS if v["name"] == name)
    first, second, _third, last = address.split(".")
    return f"{first}.{second}.4.{last}"
