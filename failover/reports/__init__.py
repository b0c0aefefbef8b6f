"""The auditors' reports: ``build`` reads a run's report and the index, ``pdf`` renders it,
``views`` and ``urls`` serve them (namespace ``reports:``, with the readiness page).
"""
