"""The reference estate of the thesis (seed digest), as plain data.

One source of truth for three consumers: ``load_reference_estate`` (the inventory),
the lab (the simulated estate it serves over SSH) and the tests. Plain dicts and
tuples only, so the lab can import it without Django.
"""

from __future__ import annotations

import os

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

HOSTS = (
    {
        "name": "xenwsl01",
        "site": "WSL",
        "address": "127.0.1.1",
        "ram_mb": 4096,
        "cpus": 4,
        "toolstack": "xl",
        "bridges": BRIDGES,
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
        "bridges": BRIDGES,
        "dom0_normal_mb": 256,
        "dom0_dr_mb": 128,
    },
)

# Thesis tables 3, 4 and 5. ``tier`` 1 starts first; ``depends_on`` must be running first.
VMS = (
    {
        "name": "dns-xen01",
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
