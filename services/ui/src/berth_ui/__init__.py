"""The web UI service: server-rendered pages over Berth's admin and registry APIs (issue 11).

It owns no tables and imports no other service: every page calls the APIs over HTTP with the
user's token (``backend.py``), so it can do nothing the API would refuse. See ``app.py``.
"""
