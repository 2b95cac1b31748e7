"""Read Kubernetes documents into the official Python models, refusing any field a model does not have.

Run with the KServe environment's interpreter (``.venv-kserve``, made by ``make test``): ``python
_strict_k8s_load.py FILE.yaml``. Each document's ``kind`` picks the model: KServe's (``V1beta1...``) for
``serving.kserve.io`` kinds, the ``kubernetes`` client's (``V1...``) for the others. The generated
deserialisers drop unknown keys silently; this one names them, so a misspelt probe or resource field
fails the test rather than vanishing. Prints one JSON line per document: its kind and the model's class.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kserve
import kubernetes.client
import yaml


def _model(name: str) -> type:
    for module in (kserve.models, kubernetes.client.models, kubernetes.client):
        found = getattr(module, name, None)
        if isinstance(found, type):
            return found
    raise SystemExit(f"no model class {name}")


def build(data: Any, kind: str, where: str) -> Any:
    if data is None:
        return None
    if kind in ("str", "int", "float", "bool", "object", "datetime", "date"):
        expected = {"str": str, "int": int, "float": (int, float), "bool": bool}.get(kind)
        if expected is not None and not isinstance(data, expected):
            raise SystemExit(f"{where}: expected {kind}, got {data!r}")
        return data
    if match := re.fullmatch(r"[lL]ist\[(.+)\]", kind):
        if not isinstance(data, list):
            raise SystemExit(f"{where}: expected a list, got {data!r}")
        return [build(item, match.group(1), f"{where}[{i}]") for i, item in enumerate(data)]
    if match := re.fullmatch(r"dict\(([^,]+), (.+)\)", kind) or re.fullmatch(r"Dict\[([^,]+), (.+)\]", kind):
        if not isinstance(data, dict):
            raise SystemExit(f"{where}: expected a mapping, got {data!r}")
        return {key: build(value, match.group(2), f"{where}.{key}") for key, value in data.items()}
    model = _model(kind)
    if not isinstance(data, dict):
        raise SystemExit(f"{where}: expected a {kind} mapping, got {data!r}")
    by_key = {key: attribute for attribute, key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise SystemExit(f"{where}: {kind} has no field(s) {unknown}")
    arguments = {
        by_key[key]: build(value, model.openapi_types[by_key[key]], f"{where}.{key}")
        for key, value in data.items()
    }
    return model(**arguments)


def main() -> None:
    with open(sys.argv[1]) as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    for index, document in enumerate(documents):
        group = document["apiVersion"].split("/")[0]
        prefix = "V1beta1" if group == "serving.kserve.io" else "V1"
        built = build(document, f"{prefix}{document['kind']}", f"document {index}")
        print(
            json.dumps(
                {"kind": document["kind"], "model": f"{type(built).__module__}.{type(built).__name__}"}
            )
        )


if __name__ == "__main__":
    main()
