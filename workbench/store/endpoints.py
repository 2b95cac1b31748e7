"""Endpoint definitions in the state store, with a revision number for optimistic concurrency.

Methods take the caller's connection so that a change and its audit event share one transaction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select, update

from workbench.errors import ConflictError, NotFoundError
from workbench.records.endpoints import EndpointRecord
from workbench.specs.endpoint import EndpointSpec
from workbench.store.schema import endpoints

# The records are defined in workbench.records (the client reads them without storage code).
__all__ = ["EndpointRecord", "EndpointRepository"]


def _record(row: dict[str, object]) -> EndpointRecord:
    return EndpointRecord(
        spec=EndpointSpec.model_validate_json(str(row["spec"])),
        revision=int(str(row["revision"])),
        created_at=datetime.fromtimestamp(float(str(row["created_at"])), tz=UTC),
        updated_at=datetime.fromtimestamp(float(str(row["updated_at"])), tz=UTC),
    )


class EndpointRepository:
    def get(self, connection: Connection, name: str) -> EndpointRecord:
        row = connection.execute(select(endpoints).where(endpoints.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"endpoint {name!r} does not exist", endpoint=name)
        return _record(dict(row))

    def list(self, connection: Connection) -> list[EndpointRecord]:
        rows = connection.execute(select(endpoints).order_by(endpoints.c.name)).mappings().all()
        return [_record(dict(row)) for row in rows]

    def create(self, connection: Connection, spec: EndpointSpec, *, revision: int = 1) -> EndpointRecord:
        """``revision``: where numbering starts (a re-created endpoint continues its recorded history)."""
        exists = connection.execute(select(endpoints.c.name).where(endpoints.c.name == spec.name)).first()
        if exists:
            raise ConflictError(f"endpoint {spec.name!r} already exists", endpoint=spec.name)
        now = time.time()
        connection.execute(
            insert(endpoints).values(
                name=spec.name, spec=spec.model_dump_json(), revision=revision, created_at=now, updated_at=now
            )
        )
        return self.get(connection, spec.name)

    def replace(
        self, connection: Connection, spec: EndpointSpec, *, expected_revision: int | None = None
    ) -> EndpointRecord:
        current = self.get(connection, spec.name)
        if expected_revision is not None and expected_revision != current.revision:
            raise ConflictError(
                f"endpoint {spec.name!r} changed meanwhile: revision is {current.revision}, "
                f"expected {expected_revision}",
                endpoint=spec.name,
                revision=current.revision,
            )
        result = connection.execute(
            update(endpoints)
            .where(endpoints.c.name == spec.name, endpoints.c.revision == current.revision)
            .values(spec=spec.model_dump_json(), revision=current.revision + 1, updated_at=time.time())
        )
        if result.rowcount != 1:
            raise ConflictError(f"endpoint {spec.name!r} changed meanwhile; retry", endpoint=spec.name)
        return self.get(connection, spec.name)

    def delete(self, connection: Connection, name: str) -> EndpointRecord:
        current = self.get(connection, name)
        connection.execute(delete(endpoints).where(endpoints.c.name == name))
        return current
