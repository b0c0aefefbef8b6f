"""The lab states the Xen driver tests run against: tests/lab/xen_states.py."""

from tests.lab.xen_states import ka_state, xm_state  # noqa: F401 (fixtures)
