"""`manage.py capacity`: what it prints for people says what is true."""

from __future__ import annotations

import io

from django.core.management import call_command


def test_a_scenario_with_unrecoverable_vms_fits_only_for_the_others_and_names_them(reference_estate):
    out = io.StringIO()
    call_command("capacity", stdout=out)
    lines = out.getvalue().splitlines()
    assert (
        "KA lost: fits for the 3 VMs that can be recovered; 3 cannot: lws-xen01, tomcat-xen01, dasi-xen01"
        in lines
    )
    assert "WSL lost: fits" in lines  # every VM of WSL can be recovered
