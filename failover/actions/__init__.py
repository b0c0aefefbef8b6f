"""What each kind of action does, observed before and after: one module per kind of work
(``dom0``, ``storage``, ``domains``, ``verify`` with its ``checks``, ``drill``), their
shared ``base``, and the ``registry`` that maps ``Action.kind`` to its handler.

Handlers know the estate only through hosts.drivers; they know nothing of runs or plans.
"""
