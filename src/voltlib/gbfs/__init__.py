"""GBFS 3.0 open data: pure feed builders (``feeds``) over typed snapshots (``model``), and the
HTTP layer that serves and caches them per city (``http``)."""
