"""Reading SSSU's output form (hosts/drivers/eva_output.py, hosts/drivers/eva.py): the
banner, the echo after the prompt, ``<path> information:`` blocks of ``key ....: value``
lines and their sub-records; and bad input, which names the array, the command, the
line and what was expected, and yields nothing half-read."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hosts.drivers.base import _SECRET, MASK, redact_secrets
from hosts.drivers.eva import group_read, parse_lag, replication_of, vdisk_of
from hosts.drivers.eva_output import SssuAnswerError, split_answers
from hosts.drivers.storage import StorageError

GROUP_CMD = 'LS DR_GROUP "\\Data Replication\\DRG-a"'
VDISK_CMD = 'LS VDISK "\\Virtual Disks\\DRG-a-1\\ACTIVE"'
# The session layout check_eva.py and hpeva_api.py expect: two blank lines, the banner,
# then each command after the prompt.
SESSION = f"""

SSSU for HP StorageWorks Command View EVA
Version: 8.0.0
Build: 123
NoSystemSelected> FILE "/etc/drportal/sssu/EVA-KA.login"
NoSystemSelected> SELECT MANAGER localhost USERNAME=drportal PASSWORD=s3cret

NoSystemSelected> SELECT SYSTEM "EVA-KA"

EVA-KA> {GROUP_CMD}
\\Data Replication\\DRG-a information:
object
  objectname ..................: \\Data Replication\\DRG-a
  operationalstate ............: good
  logstate ....................: normal
  suspendstate ................: notsuspended
  writemode ...................: asynchronous
  accessmode ..................: disable
  remotesystemname ............: EVA-WSL
  replicationlag ..............: 00:00:02
  members
    member
      objectname ..............: \\Virtual Disks\\DRG-a-1\\ACTIVE

EVA-KA> {VDISK_CMD}
\\Virtual Disks\\DRG-a-1\\ACTIVE information:
object
  objectname ..................: \\Virtual Disks\\DRG-a-1\\ACTIVE
  wwlunid .....................: 6005-08B4-0001-0002-0003-0004-0005-0006
  comments ....................: device=/dev/vg_a/lvol1
  drmmode .....................: destination
  drmgroupname ................: \\Data Replication\\DRG-a
  presentations
    presentation
      hostname ................: \\Hosts\\xenka01
      lunnumber ...............: 3
    presentation
      hostname ................: \\Hosts\\Site KA\\xenka02
      lunnumber ...............: 1
  operationalstate ............: good

"""


def answers(text=SESSION, commands=(GROUP_CMD, VDISK_CMD)):
    return split_answers(text, list(commands), "EVA-KA", ("NoSystemSelected", "EVA-KA"))


def test_it_finds_each_answer_by_its_echo_and_reads_blocks_records_and_indentation():
    group_answer, vdisk_answer = answers()
    (vdisk_block,) = vdisk_answer.blocks()
    vdisk = vdisk_of(vdisk_block, vdisk_answer)
    assert vdisk.presentations == (("\\Hosts\\xenka01", "3"), ("\\Hosts\\Site KA\\xenka02", "1"))
    assert vdisk.hosts == {"xenka01", "xenka02"}
    assert (vdisk.drm, vdisk.group, vdisk.device) == ("destination", "DRG-a", "/dev/vg_a/lvol1")
    assert vdisk.lun_device == "/dev/mapper/3600508b4000100020003000400050006"
    # A key after the sub-records, at the block's own indentation, is the block's again.
    assert vdisk_block.fields["operationalstate"] == "good"
    (group_block,) = group_answer.blocks()
    read = group_read("DRG-a", "EVA-KA", group_block, group_answer, {vdisk.path.lower(): vdisk})
    status = read.status
    assert (status.role, status.peer_role, status.replication, status.lag_seconds) == (
        "secondary",
        "primary",
        "consistent",
        2.0,
    )
    assert status.presented_to == ("xenka01", "xenka02") and status.members == (vdisk.path,)
    assert "EVA-KA: destination, operationalstate good" in status.detail


def test_a_vdisk_without_a_device_comment_is_its_multipath_device():
    text = SESSION.replace("device=/dev/vg_a/lvol1", "")
    _, vdisk_answer = answers(text)
    vdisk = vdisk_of(vdisk_answer.blocks()[0], vdisk_answer)
    assert vdisk.device == vdisk.lun_device


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"suspendstate": "suspended"}, "suspended"),
        ({"operationalstate": "failed"}, "broken"),
        ({"logstate": "fullcopy"}, "syncing"),
        ({"logstate": "merging"}, "syncing"),
        ({"logstate": "logging"}, "broken"),
        ({"logstate": "overflow"}, "broken"),
        ({"operationalstate": "attention"}, "consistent"),
        ({"logstate": "strange"}, "unknown"),
    ],
)
def test_it_maps_array_states_to_replication(changes, expected):
    fields = {"operationalstate": "good", "logstate": "normal", "suspendstate": "notsuspended"} | changes
    assert replication_of(fields) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2", 2.0),
        ("2.5 s", 2.5),
        ("00:00:02", 2.0),
        ("1:30", 90.0),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_it_reads_the_lag(text, seconds):
    assert parse_lag(text) == seconds


def test_a_line_it_cannot_read_names_the_array_the_command_the_line_and_what_was_expected():
    text = SESSION.replace("  writemode ...................: asynchronous", "  writemode = asynchronous")
    group_answer, _ = answers(text)
    line = text.splitlines().index("  writemode = asynchronous") + 1
    with pytest.raises(SssuAnswerError) as caught:
        group_answer.blocks()
    assert caught.value.message == (
        f"EVA-KA: cannot read the answer to {GROUP_CMD!r}, line {line}: 'writemode = asynchronous': "
        "expected '<path> information:', 'key ....: value' or a section name"
    )


def test_a_missing_field_names_it_and_what_was_expected():
    text = SESSION.replace("  logstate ....................: normal\n", "")
    group_answer, vdisk_answer = answers(text)
    vdisk = vdisk_of(vdisk_answer.blocks()[0], vdisk_answer)
    with pytest.raises(
        SssuAnswerError,
        match=r"\(line 12, \\Data Replication\\DRG-a\) has no logstate field: expected normal, logging",
    ):
        group_read("DRG-a", "EVA-KA", group_answer.blocks()[0], group_answer, {vdisk.path.lower(): vdisk})
    text = SESSION.replace("  wwlunid .....................: 6005-08B4-0001-0002-0003-0004-0005-0006\n", "")
    _, vdisk_answer = answers(text)
    with pytest.raises(SssuAnswerError, match="has no wwlunid field: expected its LUN WWID"):
        vdisk_of(vdisk_answer.blocks()[0], vdisk_answer)
    text = SESSION.replace("      lunnumber ...............: 3\n", "")
    _, vdisk_answer = answers(text)
    with pytest.raises(SssuAnswerError, match="presentation without hostname and a numeric lunnumber"):
        vdisk_of(vdisk_answer.blocks()[0], vdisk_answer)


def test_a_group_whose_vdisks_disagree_or_that_lists_none_is_refused():
    group_answer, vdisk_answer = answers()
    vdisk = vdisk_of(vdisk_answer.blocks()[0], vdisk_answer)
    other = replace(vdisk, path="\\Virtual Disks\\DRG-a-2\\ACTIVE", drm="source")
    two = SESSION.replace(
        "      objectname ..............: \\Virtual Disks\\DRG-a-1\\ACTIVE\n",
        "      objectname ..............: \\Virtual Disks\\DRG-a-1\\ACTIVE\n    member\n"
        "      objectname ..............: \\Virtual Disks\\DRG-a-2\\ACTIVE\n",
    )
    both, _ = answers(two)
    vdisks = {vdisk.path.lower(): vdisk, other.path.lower(): other}
    with pytest.raises(
        StorageError, match=r"DR group DRG-a on EVA-KA: its virtual disks disagree on drmmode"
    ):
        group_read("DRG-a", "EVA-KA", both.blocks()[0], both, vdisks)
    bare, _ = answers(
        SESSION.replace(
            "  members\n    member\n      objectname ..............: \\Virtual Disks\\DRG-a-1\\ACTIVE\n", ""
        )
    )
    with pytest.raises(SssuAnswerError, match="lists no member records with an objectname"):
        group_read("DRG-a", "EVA-KA", bare.blocks()[0], bare, {vdisk.path.lower(): vdisk})
    assert group_answer.blocks()[0].records["member"] == [{"objectname": vdisk.path}]


def test_an_answer_the_session_never_reached_is_an_error():
    with pytest.raises(SssuAnswerError, match="EVA-KA: SSSU did not answer 'LS VDISK FULL'"):
        answers(commands=(GROUP_CMD, "LS VDISK FULL"))


def test_text_before_a_block_is_refused_in_a_detail_answer_and_listings_hold_paths_only():
    group_answer, _ = answers(SESSION.replace("\\Data Replication\\DRG-a information:", "Hello"))
    with pytest.raises(SssuAnswerError, match="'Hello': expected '<path> information:'"):
        group_answer.blocks()
    listing = 'EVA-KA> LS DR_GROUP\nDR groups:\n  \\Data Replication\\DRG-a\n  "\\Data Replication\\DRG-b"\n'
    (answer,) = split_answers(listing, ["LS DR_GROUP"], "EVA-KA", ("EVA-KA",))
    assert answer.listing("\\Data Replication\\") == [
        "\\Data Replication\\DRG-a",
        "\\Data Replication\\DRG-b",
    ]
    (answer,) = split_answers(listing + "  oops\n", ["LS DR_GROUP"], "EVA-KA", ("EVA-KA",))
    with pytest.raises(
        SssuAnswerError, match=r"line 5: 'oops': expected a path starting \\Data Replication\\"
    ):
        answer.listing("\\Data Replication\\")


def test_a_password_a_tool_echoes_is_masked():
    assert redact_secrets(SESSION).count(f"PASSWORD={MASK}") == 1
    assert "s3cret" not in redact_secrets(SESSION)
    assert (
        redact_secrets('select manager m username=u password="a b"')
        == f"select manager m username=u password={MASK}"
    )


def test_a_password_is_masked_in_any_case_the_pattern_matches_and_a_text_without_one_is_kept():
    # (?i) takes the long s (U+017F) for an s: the quick test for the word must too.
    assert redact_secrets("PA\u017f\u017fWORD=s3cret") == f"PA\u017f\u017fWORD={MASK}"
    assert redact_secrets("a Password = 'x'") == f"a Password = {MASK}"
    assert redact_secrets("Stra\u00dfe PASSWORD=x") == f"Stra\u00dfe PASSWORD={MASK}"  # \u00df folds to "ss"
    assert redact_secrets("mypassword=x Password=y password=") == f"mypassword=x Password={MASK} password="
    assert redact_secrets("PASSWORD=PASSWORD=x") == f"PASSWORD={MASK}"  # the value is masked whole
    echoed = "\n".join(["object", "  PASSWORD=a", "  passwordPASSWORD=b", '  Password = "c d" e'] * 3)
    assert redact_secrets(echoed) == _SECRET.sub(lambda m: m.group(1) + MASK, echoed)
    listing = SESSION.replace("PASSWORD", "USERNAME") * 1000
    assert redact_secrets(listing) is listing


@given(
    st.lists(
        st.sampled_from(
            [
                "password",
                "PASSWORD",
                "PaSſWord",
                "pa\u017f\u017fword",
                "=",
                " = ",
                '"',
                "x",
                " ",
                "\n",
                "\u00df",
                "\u0130",
                "my",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_masking_answers_what_the_pattern_answers_searched_everywhere(text):
    assert redact_secrets(text) == _SECRET.sub(lambda m: m.group(1) + MASK, text)
