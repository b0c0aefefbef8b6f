"""How often a check asks again while a VM the run started is still booting."""

from itertools import islice

from failover.actions.verify import check_pauses


def test_pauses_double_from_a_quarter_second_up_to_the_poll_interval():
    assert list(islice(check_pauses(2.0), 6)) == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_poll_interval_shorter_than_the_first_pause_is_used_from_the_start():
    assert list(islice(check_pauses(0.1), 3)) == [0.1, 0.1, 0.1]


def test_the_doubling_stops_at_an_interval_that_is_no_power_of_two():
    assert list(islice(check_pauses(0.3), 4)) == [0.25, 0.3, 0.3, 0.3]
