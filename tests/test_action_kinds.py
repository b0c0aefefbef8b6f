from failover.actions.registry import HANDLERS
from failover.board.selectors import ACTION_KINDS
from failover.choices import RunKindChoices, steps_for


def test_every_kind_of_action_has_a_label_on_the_board():
    assert set(HANDLERS) - set(ACTION_KINDS) == set()


def test_every_kind_of_run_has_its_steps_numbered_from_zero_with_unique_keys():
    for kind in RunKindChoices.values:
        steps = steps_for(kind)
        assert [n for n, _k, _name, _m in steps] == list(range(len(steps))), kind
        assert len({k for _n, k, _name, _m in steps}) == len(steps), kind
