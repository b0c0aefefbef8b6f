"""The portal's API (Django REST framework, OpenAPI schema by drf-spectacular) and its
Prometheus metrics.

The API is a second door to the same selectors and services as the UI, with the same
permissions (``hosts.permissions``): every role reads the inventory, the what-ifs, the
readiness and the runs; only the Manager on Duty declares a disaster or starts a drill.
Clients authenticate with a token (``manage.py api_token USERNAME``) or the UI's session.
"""
