"""Runs: their plans and the services that start and control them.

``plan`` (Plan, PlannedAction and the blocks every kind shares) and ``survey`` (what
losing a site means, looked at live) serve one module per kind of run: ``failover``,
``drill``, ``cleanup``, ``failback``, ``migration``. ``create`` freezes a plan into a run;
``controls`` are the operator's buttons; ``preview``, ``forecast`` and ``selectors`` read.
"""
