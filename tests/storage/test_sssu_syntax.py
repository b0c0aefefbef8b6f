"""No word outside the real SSSU 8.0 keyword table: not in the driver's syntax block, not
in anything the driver sends, not accepted by the lab."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hosts.drivers import eva, eva_syntax
from hosts.lab.tools.sssu_words import KEYWORD_FILE, KEYWORDS, load_keywords
from tests.lab.storage_states import EVA_GROUP, LabRunner, login, make_state, set_down

SOURCE = Path(eva_syntax.__file__).read_text(encoding="utf-8")
START = "# --- the syntax block"
END = "# --- end of the syntax block"
# An SSSU word as the table spells it: upper case, digits, underscores (two characters or more).
WORD = re.compile(r"(?<![\w\\/.{-])[A-Z][A-Z0-9_]+(?![\w}-])")


def words_in(text: str) -> set[str]:
    """The keyword-like words of a command template: placeholders ({...}) and quoted values
    ("...") are values, not words."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}', " ", text)
    return set(WORD.findall(bare))


def syntax_block_strings() -> list[str]:
    start, end = SOURCE.index(START), SOURCE.index(END)
    first = SOURCE.count("\n", 0, start) + 1
    last = SOURCE.count("\n", 0, end) + 1
    return [
        node.value
        for node in ast.walk(ast.parse(SOURCE))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and first <= node.lineno <= last
    ]


def test_the_table_is_the_real_binarys_with_its_provenance():
    text = KEYWORD_FILE.read_text(encoding="utf-8")
    assert "opinkerfi/nagios-plugins" in text and "sssu_linux_x64" in text and "361b4ff" in text
    assert {"FAILOVER", "NOSUSPEND", "FORCEFULLCOPY", "ACCESSMODE", "LUN", "SNAPSHOT", "FILE"} <= KEYWORDS
    assert not {"RESUME", "REVERSE", "PRESENT", "UNPRESENT", "FORCE", "PORTn_MTU"} & KEYWORDS
    assert load_keywords() == KEYWORDS


def test_every_word_of_the_drivers_syntax_block_is_in_the_table():
    strings = syntax_block_strings()
    assert any("FAILOVER" in s for s in strings)  # the block was found and read
    used = set().union(*(words_in(s) for s in strings))
    assert used - KEYWORDS == set()
    assert {
        "FILE",
        "SET",
        "OPTIONS",
        "ON_ERROR",
        "EXIT_ON_ERROR",
        "SELECT",
        "SYSTEM",
        "ADD",
        "DELETE",
    } <= used


def test_the_word_check_finds_a_word_outside_the_table():
    # The check itself can fail: a template with REVERSE (or FORCE) is caught.
    assert words_in('SET DR_GROUP "{group}" REVERSE') - KEYWORDS == {"REVERSE"}
    assert words_in('SET DR_GROUP "\\Data Replication\\{group}" FAILOVER FORCE') - KEYWORDS == {"FORCE"}


def driver(state, system="EVA-KA"):
    runner = LabRunner(state, system.lower())
    return eva.EvaDriver(runner, system=system, login_file=login(system)), runner


def test_everything_the_driver_sends_through_a_failover_drill_and_failback_is_a_table_word():
    state = make_state()
    wsl, wsl_runner = driver(state, "EVA-WSL")
    ka, ka_runner = driver(state)
    ka.statuses([EVA_GROUP])
    ka.snapshot(EVA_GROUP, "drill-1")
    ka.present_snapshot("drill-1", "xenka01")
    ka.list_snapshots()
    ka.unpresent_snapshot("drill-1", "xenka01")
    ka.delete_snapshot("drill-1")
    wsl.suspend(EVA_GROUP)
    wsl.resume(EVA_GROUP)
    wsl.demote(EVA_GROUP)
    ka.present(EVA_GROUP, "xenka01", current=ka.promote(EVA_GROUP))
    ka.integrity_check(EVA_GROUP)
    ka.reverse(EVA_GROUP)
    set_down(state, "eva-wsl")
    ka.list_groups()
    sent = [word for runner in (wsl_runner, ka_runner) for argv in runner.argvs for word in argv[1:]]
    assert len(sent) > 40
    assert set().union(*(words_in(command) for command in sent)) - KEYWORDS == set()


@pytest.mark.parametrize("word", ["FORCE", "RESUME", "REVERSE", "PRESENT", "UNPRESENT"])
def test_the_lab_refuses_each_word_the_old_driver_sent(word):
    assert word not in KEYWORDS
    state = make_state()
    _, runner = driver(state)
    result = runner.run(
        [
            "sssu",
            f'FILE "{login("EVA-KA")}"',
            'SELECT SYSTEM "EVA-KA"',
            f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" {word}',
        ],
        timeout=5,
    )
    assert (result.exit_status, result.stdout.rstrip().splitlines()[-1]) == (
        1,
        f"Error: Unknown keyword {word}",
    )
