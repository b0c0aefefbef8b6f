"""What real drbd-utils print for ``drbdsetup status`` / ``drbdadm status``, written out by
hand from the printers' formats of drbd-utils 9.22.0 (user/v9/drbdsetup.c, "v9:LINE";
user/v84/drbdsetup.c, "v84:LINE"; line wrapping user/shared/wrap_printf.c, "wrap:LINE"),
or quoted from LINBIT's user guides and a public capture where marked. The parser tests
read them; the lab's printer must print them (tests/lab/test_lab_drbd_printer.py), so neither can
agree with the other on a mistake of its own.

Rules used throughout: no terminal (SSH exec), so 80 columns (wrap:15-22) and no colours;
a field that would pass column 80 starts a new line at the element's indent (wrap:28-40);
a resource ends with a blank line (v9:3259, v84:2735).
"""

from __future__ import annotations

# [DOC] LINBIT DRBD 8.4 user guide, "drbdadm status" (drbd-utils >= 8.9 on an 8.4
# kernel). v84:2617 names the connection "peer"; v84:2561 prints replication:Established.
UG84_PLAIN = """\
home role:Secondary
  disk:UpToDate
  peer role:Secondary
    replication:Established peer-disk:UpToDate

"""

# [DOC] The same guide, "drbdsetup status home --verbose --statistics". Its
# "resync-suspended:no" sits on a line of its own although it fits (an older printer or
# a wider terminal); the parser must read it anyway: indent 8 continues a peer volume.
UG84_VERBOSE = """\
home role:Secondary suspended:no
    write-ordering:flush
  volume:0 minor:0 disk:UpToDate
      size:5033792 read:0 written:0 al-writes:0 bm-writes:0 upper-pending:0
      lower-pending:0 al-suspended:no blocked:no
  peer connection:Connected role:Secondary congested:no
    volume:0 replication:Established peer-disk:UpToDate
        resync-suspended:no
        received:0 sent:0 out-of-sync:0 pending:0 unacked:0
"""

# [SRC] 8.4, --verbose --statistics, derived: resource v84:2456-2489 (suspended:no with
# --verbose; "\n" then write-ordering at indent 4); device v84:2491-2513 (volume, minor,
# disk; "\n"; statistics v84:2373-2424: size.. al-suspended, then blocked:no; the 16
# characters of " lower-pending:0" would reach column 91: wrap); connection v84:2613-2641
# ("peer", connection:, role:, congested:); peer device v84:2552-2600: the line is 75
# columns with resync-suspended:no, then "\n" and the statistics v84:2436-2454.
V84_VERBOSE_STATISTICS = """\
home role:Secondary suspended:no
    write-ordering:flush
  volume:0 minor:0 disk:UpToDate
      size:5033792 read:0 written:0 al-writes:0 bm-writes:0 upper-pending:0
      lower-pending:0 al-suspended:no blocked:no
  peer connection:Connected role:Secondary congested:no
    volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
        received:0 sent:0 out-of-sync:0 pending:0 unacked:0

"""

# [SRC] 8.4 after the peer is lost: connection WFConnection prints as Connecting
# (v84:2543-2549, 2622-2629); no peer volumes without --verbose/--statistics (v84:2640).
V84_PEER_LOST = """\
r0 role:Primary
  disk:UpToDate
  peer connection:Connecting

"""

# [SRC] 8.4 resync, plain: replication:SyncSource and done: 100*(1-oos/size)
# (v84:2581-2585) after the peer disk.
V84_SYNCING = """\
r0 role:Primary
  disk:UpToDate
  peer role:Secondary
    replication:SyncSource peer-disk:Inconsistent done:37.50

"""

# [SRC] DRBD 9, two volumes, the peer resyncing volume 0: the volumes get volume:N
# (v9:2971-2976, not one volume 0); a Connected connection shows its role only
# (v9:3127-3139); replication only above Established (v9:3047) and done: from the
# kernel's sync details (v9:3077-3085).
V9_TWO_VOLUMES_SYNCING = """\
data role:Primary
  volume:0 disk:UpToDate
  volume:1 disk:UpToDate
  xenka01 role:Secondary
    volume:0 replication:SyncSource peer-disk:Inconsistent done:37.50
    volume:1 peer-disk:UpToDate

"""

# [SRC] DRBD 9, --statistics without --verbose, one volume, resyncing: a statistics line
# under the device (v9:2988-2991: "\n", read:, written:; size only with --verbose) and
# under the peer device (v9:3093-3096, 2866-2874: out-of-sync only when not 0).
V9_STATISTICS_SYNCING = """\
r0 role:Primary
  disk:UpToDate
      read:0 written:0
  xenka01 role:Secondary
    replication:SyncSource peer-disk:Inconsistent done:37.50
        received:0 sent:655360 out-of-sync:655360

"""

# [SRC] DRBD 9 --verbose with two volumes, built to hit both wrap rules. Device line 1
# is exactly 80 columns; its closing wrap_printf(6, "\n") then does not fit (col 80 + 1):
# wrap:28-40 print the newline and then the indent, and do not reset the column, so
# volume 1 starts at column 7 of the next line; its blocked:no passes column 80 and
# wraps to indent 6. The connection line wraps at ap-in-flight (83 columns) to indent 6
# (v9:2581-2593). Connections sort by name (v9:3659-3664).
V9_VERBOSE_WRAPPED = """\
r0 node-id:0 role:Primary suspended:no force-io-failures:no
  volume:0 minor:0 disk:UpToDate backing_dev:/dev/vg0/lv00 quorum:yes blocked:no
      volume:1 minor:1 disk:UpToDate backing_dev:/dev/vg0/lv01 quorum:yes
      blocked:no
  xenka01 node-id:1 connection:Connected role:Secondary congested:no
      ap-in-flight:0 rs-in-flight:0
    volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
    volume:1 replication:Established peer-disk:UpToDate resync-suspended:no

"""

# [SRC] DRBD 9, this node an intentional diskless client (disk:Diskless client:yes,
# printed because stdout is no terminal, v9:2978-2979), two diskful peers.
V9_DISKLESS_CLIENT = """\
r0 role:Primary
  disk:Diskless client:yes
  xenka01 role:Secondary
    peer-disk:UpToDate
  xenwsl01 role:Secondary
    peer-disk:UpToDate

"""

# [SRC] DRBD 9, a diskless peer (a tie-breaker): peer-disk:Diskless peer-client:yes
# (v9:3069-3071), next to a diskful peer.
V9_DISKLESS_PEER = """\
r0 role:Primary
  disk:UpToDate
  witness role:Secondary
    peer-disk:Diskless peer-client:yes
  xenka01 role:Secondary
    peer-disk:UpToDate

"""

# [SRC] DRBD 9, I/O frozen and quorum lost: suspended: only when suspended (v9:2938-2943,
# the reasons of susp_str v9:2465-2491), quorum:no only when lost (v9:2982-2987),
# blocked: only when blocked (v9:2559-2577), all on the lines they belong to.
V9_SUSPENDED_NO_QUORUM = """\
r0 role:Primary suspended:quorum
  disk:UpToDate quorum:no blocked:upper
  xenka01 connection:Connecting

"""

# [DOC] LINBIT DRBD 9 user guide, "drbdadm status": peers shown with "disk:" (the
# printer says peer-disk: since drbd-utils commit c79c3393, 2013) and one not connected.
UG9_THREE_PEERS = """\
home role:Secondary
  disk:UpToDate
  nina role:Secondary
    disk:UpToDate
  nino role:Secondary
    disk:UpToDate
  nono connection:Connecting
"""

# [SRC] DRBD 9 ``drbdsetup status --json``, drbd-utils 9.22.0: resource_status_json
# v9:2794-2839, device_status_json v9:2755-2792 (statistics included: the kernel sends
# them), connection_status_json v9:2718-2753 (note the space before the newline after
# "connection-state", written \x20 here), peer_device_status_json v9:2600-2716 (sync
# details while volume 0 resyncs: rs-*, want, the rates, the estimate and
# percent-resync-done), the list and its separators status_cmd v9:3215-3268
# (puts("]\n") ends it with an empty line).
V9_JSON_TWO_VOLUMES_SYNCING = """\
[
{
  "name": "data",
  "node-id": 0,
  "role": "Primary",
  "suspended": false,
  "suspended-user": false,
  "suspended-no-data": false,
  "suspended-fencing": false,
  "suspended-quorum": false,
  "force-io-failures": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 1,
      "disk-state": "UpToDate",
      "client": false,
      "quorum": true,
      "size": 1048576,
      "read": 0,
      "written": 0,
      "al-writes": 0,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    },
    {
      "volume": 1,
      "minor": 2,
      "disk-state": "UpToDate",
      "client": false,
      "quorum": true,
      "size": 1048576,
      "read": 0,
      "written": 0,
      "al-writes": 0,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    } ],
  "connections": [
    {
      "peer-node-id": 1,
      "name": "xenka01",
      "connection-state": "Connected",\x20
      "congested": false,
      "peer-role": "Secondary",
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "SyncSource",
          "peer-disk-state": "Inconsistent",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 0,
          "sent": 0,
          "out-of-sync": 655360,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": true,
          "has-online-verify-details": false,
          "percent-in-sync": 37.50,
          "rs-total": 2097152,
          "rs-dt-start-ms": 3750,
          "rs-paused-ms": 0,
          "rs-dt0-ms": 3000,
          "rs-db0-sectors": 629146,
          "rs-dt1-ms": 3000,
          "rs-db1-sectors": 629146,
          "rs-failed": 0,
          "rs-same-csum": 0,
          "want": 0.00,
          "db0/dt0 [MiB/s]": 102.40,
          "db1/dt1 [MiB/s]": 102.40,
          "estimated-seconds-to-finish": 6,
          "db/dt [MiB/s]": 102.40,
          "percent-resync-done": 37.50
        },
        {
          "volume": 1,
          "replication-state": "Established",
          "peer-disk-state": "UpToDate",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 0,
          "sent": 0,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ]
}
]

"""

# [CAP] A real ``drbdsetup status --json`` of an older drbd-utils (ClusterLabs/
# ha_cluster_exporter issue #25, 2019): no suspended-* fields yet (drbd-utils < 9.21).
CAPTURE_JSON_OLD_UTILS = """\
[
{
  "name": "1-single-0",
  "node-id": 1,
  "role": "Primary",
  "suspended": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 2,
      "disk-state": "UpToDate",
      "client": false,
      "quorum": true,
      "size": 409600,
      "read": 8457,
      "written": 536513,
      "al-writes": 4,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    } ],
  "connections": [
    {
      "peer-node-id": 2,
      "name": "SLE15-sp1-gm-drbd1145296-node2",
      "connection-state": "Connected",\x20
      "congested": false,
      "peer-role": "Secondary",
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Established",
          "peer-disk-state": "UpToDate",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 8202,
          "sent": 534390,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ]
}
]
"""
