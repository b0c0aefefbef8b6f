"""The status board: its views and forms (``views``, ``forms``, ``urls``), the reads they
render (``selectors``, ``overview``), and the live stream (``gate``: the view and the ASGI
wrapper; ``stream``: the hub that fans RunEvents out to every watcher).
"""
