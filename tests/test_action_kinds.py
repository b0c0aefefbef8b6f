import pytest
from django.core.exceptions import ImproperlyConfigured

from failover.actions.registry import HANDLERS, check_complete
from failover.choices import STEP_NAMES, ActionKindChoices, RunKindChoices, steps_for
from failover.models import Action


def test_every_kind_of_action_has_a_handler_and_a_label():
    assert set(HANDLERS) == set(ActionKindChoices.values)
    assert all(str(label) for _value, label in ActionKindChoices.choices)


def test_the_action_kind_field_takes_its_choices_from_the_kinds():
    assert Action._meta.get_field("kind").choices == ActionKindChoices.choices


def test_the_registry_refuses_a_kind_without_a_handler_and_a_handler_without_a_kind():
    handlers = {k: h for k, h in HANDLERS.items() if k != ActionKindChoices.SHUTDOWN_VM}
    with pytest.raises(ImproperlyConfigured, match="kinds without a handler: shutdown_vm"):
        check_complete(handlers)
    with pytest.raises(ImproperlyConfigured, match="handlers of no ActionKindChoices kind: reboot_vm"):
        check_complete({**HANDLERS, "reboot_vm": HANDLERS[ActionKindChoices.START_VM]})


def test_every_kind_of_run_has_its_steps_numbered_from_zero_with_unique_keys():
    for kind in RunKindChoices.values:
        steps = steps_for(kind)
        assert [n for n, _k, _name, _m in steps] == list(range(len(steps))), kind
        assert len({k for _n, k, _name, _m in steps}) == len(steps), kind


def test_every_kind_of_run_names_its_steps_as_its_table_numbers_them():
    for kind in RunKindChoices.values:
        named = STEP_NAMES[kind]
        assert [(s.value, s.name.lower()) for s in named] == [
            (n, k) for n, k, _name, _m in steps_for(kind)
        ], kind
