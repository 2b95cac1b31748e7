"""The seam between the control plane and whatever runs the traffic.

``local`` runs replica processes and a router on this machine (``supervisor.py``); ``ray`` runs the same
apps on Ray Serve (:mod:`workbench.serving.ray`); ``none`` keeps endpoint definitions without serving
them (a registry-only control plane). Backends are picked by name from a small registry, as papermill
picks its engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from workbench.errors import ValidationError
from workbench.specs.endpoint import EndpointSpec

ModelDirs = Mapping[tuple[str, int], Path]


class LazyModelDirs(Mapping[tuple[str, int], Path]):
    """The model directories of some versions, each looked up (once) only when a backend asks for it:
    a deploy whose replicas all run already costs no registry lookup."""

    def __init__(self, versions: Iterable[tuple[str, int]], lookup: Callable[[str, int], Path]) -> None:
        self._versions = tuple(dict.fromkeys(versions))
        self._lookup = lookup
        self._found: dict[tuple[str, int], Path] = {}

    def __getitem__(self, key: tuple[str, int]) -> Path:
        if key not in self._versions:
            raise KeyError(key)
        if key not in self._found:
            self._found[key] = self._lookup(*key)
        return self._found[key]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)


class ServingBackend(Protocol):
    def start(
        self, endpoints: Sequence[EndpointSpec], model_dirs: Callable[[EndpointSpec], ModelDirs]
    ) -> None:
        """Adopt or start what the stored endpoints need (called once, when the control plane starts)."""

    def prepare(self, spec: EndpointSpec, model_dirs: ModelDirs) -> None:
        """Bring up everything ``spec`` needs and wait until it is ready; raise (having cleaned up) if not.

        The wait must hold nothing another endpoint's deploy, or a ``status`` call, would wait for.
        """

    def publish(self, name: str, spec: EndpointSpec | None) -> None:
        """Route endpoint ``name`` as ``spec`` says (None: no more), then retire what it no longer needs.

        Per endpoint, so a stale view of one endpoint can never touch another's replicas; the caller
        serialises the calls for one endpoint (and ``prepare`` with them).
        """

    def status(self) -> dict[str, Any]:
        """Processes, their state and addresses, for status pages."""

    def close(self) -> None: ...


class NoServing:
    """Endpoint definitions only: nothing is served (for a registry-only control plane)."""

    def start(
        self, endpoints: Sequence[EndpointSpec], model_dirs: Callable[[EndpointSpec], ModelDirs]
    ) -> None:
        return None

    def prepare(self, spec: EndpointSpec, model_dirs: ModelDirs) -> None:
        return None

    def publish(self, name: str, spec: EndpointSpec | None) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"backend": "none", "router": None, "replicas": []}

    def close(self) -> None:
        return None


BackendFactory = Callable[..., ServingBackend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _BACKENDS[name] = factory


def make_backend(name: str, **kwargs: Any) -> ServingBackend:
    if name == "local" and "local" not in _BACKENDS:
        from workbench.serving.supervisor import LocalSupervisor

        register_backend("local", LocalSupervisor)
    if name == "ray" and "ray" not in _BACKENDS:
        from workbench.serving.ray.backend import RayBackend

        register_backend("ray", RayBackend)
    if name == "none":
        return NoServing()
    factory = _BACKENDS.get(name)
    if factory is None:
        raise ValidationError(
            f"unknown serving backend {name!r}: choose one of {sorted({'local', 'none', 'ray', *_BACKENDS})}",
            field="serving_backend",
        )
    return factory(**kwargs)
