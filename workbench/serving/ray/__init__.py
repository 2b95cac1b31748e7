"""The ``ray`` serving backend: the same endpoints served by Ray Serve on a Ray cluster.

Ray is imported only here and only when this backend is chosen. :mod:`.serve_config` turns endpoint
specs into Ray Serve's declarative config (pure, unit-tested); :mod:`.cluster` finds or starts the
cluster; :mod:`.backend` is the :class:`~workbench.serving.backend.ServingBackend`; :mod:`.version` and
:mod:`.ingress` are the deployments that run inside Ray, built from the local replica's and router's own
apps so both backends answer, route, batch and log the same way.
"""
