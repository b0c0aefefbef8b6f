"""Readiness, continuously: could each site be lost today, and what stands in the way?

A Django app of its own (label ``readiness``) inside ``failover``: its models and
migrations evolve apart from the runbook engine's. ``services.readiness_check`` looks
at the estate (``probe``), judges it (``assess``), records a verdict per site and mails
the MoD and DR admins when a verdict changes (``notify``); ``selectors`` read it back.
"""
