"""``workbench export ...``: files for the tools teams already run (Prometheus, Grafana, Docker, Kubernetes)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors
from workbench.client import Client
from workbench.errors import ValidationError
from workbench.export import prometheus
from workbench.export.targets import targets_file
from workbench.paths import require_within, write_atomic
from workbench.settings import get_settings
from workbench.specs.endpoint import EndpointSpec

app = typer.Typer(help="Write files for the tools you already run.", no_args_is_help=True)


def output_dir(raw: str, roots: tuple[Path, ...]) -> Path:
    """The directory to write into, under an allowed root (``WORKBENCH_ALLOWED_ROOTS``), checked before
    anything is asked of the API or written; it may not exist yet."""
    path = Path(raw).expanduser()
    resolved = require_within(
        path if path.is_absolute() else Path.cwd() / path, roots, field="--out", shown=raw
    )
    if resolved.exists() and not resolved.is_dir():
        raise ValidationError(f"--out {raw!r} is not a directory", field="out")
    return resolved


@app.command("prometheus")
@handle_errors
def export_prometheus(
    out: str = typer.Option(..., "--out", help="directory for prometheus.yml and workbench-rules.yml"),
) -> None:
    """A scrape config (file-based discovery of the control plane and the router, which serves every
    replica's series) and alerting rules equivalent to the workbench's alert rules."""
    settings = get_settings()
    directory = output_dir(out, settings.allowed_roots)
    discovered = targets_file(settings.home)
    with Client() as client:
        rules = [record.spec for record in client.alert_rules()]
    if not discovered.is_file():
        raise fail(f"{discovered} does not exist yet: start the control plane (workbench up) first", 1)
    directory.mkdir(parents=True, exist_ok=True)
    rules_file = directory / "workbench-rules.yml"
    config_file = directory / "prometheus.yml"
    write_atomic(rules_file, yaml.safe_dump(prometheus.alerting_rules(rules), sort_keys=False))
    write_atomic(
        config_file, yaml.safe_dump(prometheus.scrape_config(discovered, rules_file), sort_keys=False)
    )
    console.print(f"wrote {config_file} (targets from {discovered})")
    console.print(f"wrote {rules_file} ({len(rules)} alerting rules)")
    console.print(f"run: prometheus --config.file={config_file}")


@app.command("grafana")
@handle_errors
def export_grafana(
    out: str = typer.Option(..., "--out", help="directory for the dashboard's JSON"),
) -> None:
    """The endpoints dashboard (requests, errors and latency by version, batch sizes, queue and forward
    time per replica, drift, alert states), to import into Grafana with a Prometheus data source."""
    import json

    from workbench.export import grafana

    directory = output_dir(out, get_settings().allowed_roots)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / grafana.FILE_NAME
    write_atomic(target, json.dumps(grafana.dashboard(), indent=2) + "\n")
    console.print(f"wrote {target}: import it in Grafana (Dashboards > New > Import)")


# --------------------------------------------------------------------------------------------------------------
# Containers and Kubernetes


def _chosen_version(spec: EndpointSpec, version: int | None, model: str | None = None) -> tuple[str, int]:
    """``version`` (of ``model``) if the endpoint routes or mirrors to it, else the version taking the most
    traffic; two models' versions of one number need ``model`` to tell them apart."""
    served = list(
        dict.fromkeys(
            [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
        )
    )
    if version is None:
        primary = max(spec.routes, key=lambda r: r.weight)
        return primary.model, primary.version
    found = [(m, n) for m, n in served if n == version and (model is None or m == model)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValidationError(
            f"endpoint {spec.name!r} serves version {version} of {', '.join(m for m, _ in found)}: "
            "name one with --model",
            field="model",
        )
    raise ValidationError(
        f"endpoint {spec.name!r} does not serve version {version}"
        + (f" of {model!r}" if model else "")
        + "; it serves "
        + ", ".join(f"{m}/v{n}" for m, n in served),
        field="version",
    )


#: Marks a directory an export wrote: only such a directory (or an empty one) is written into again.
EXPORT_MARKER = ".workbench-export"


def _export_dir(raw: str, roots: tuple[Path, ...]) -> Path:
    """``--out`` for docker and k8s: under the allowed roots, and new, empty or an earlier export's (its
    files of the same names are replaced; anything else there would be at risk, so it is refused)."""
    directory = output_dir(raw, roots)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / EXPORT_MARKER).is_file():
        raise ValidationError(
            f"--out {raw!r} is not empty and was not written by workbench export: "
            "choose a new or empty directory",
            field="out",
        )
    return directory


def _staging(directory: Path) -> tuple[Path, bool]:
    """A staging directory inside ``directory`` (created if missing; the bool says so)."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".partial-", dir=directory)), created


def _publish(staging: Path, directory: Path) -> None:
    """Move what was staged into ``directory``, replacing entries of the same names: everything was
    produced before anything the directory held is replaced."""
    for entry in sorted(staging.iterdir()):
        target = directory / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        shutil.move(str(entry), str(target))
    (directory / EXPORT_MARKER).write_text(
        "written by workbench export; its files are replaced by the next\n"
    )


def _discard(staging: Path, directory: Path, created: bool) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if created and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@app.command("docker")
@handle_errors
def export_docker(
    endpoint: str = typer.Argument(..., help="the endpoint whose version the image serves"),
    out: str = typer.Option(..., "--out", help="directory for the build context (Dockerfile, model/, ...)"),
    version: int | None = typer.Option(
        None, "--version", help="the version to package (default: the one taking the most traffic)"
    ),
    model: str | None = typer.Option(
        None, "--model", help="with --version, when two of the endpoint's models have that version"
    ),
    wheel: str | None = typer.Option(
        None, "--wheel", help="a built mlops_workbench wheel to install, instead of building one from source"
    ),
) -> None:
    """A Docker build context for one replica of one version: the wheel the README installs, the model's
    files, a non-root user and a health check. No container engine is needed to write it."""
    from workbench.export import container

    settings = get_settings()
    directory = _export_dir(out, settings.allowed_roots)
    wheel_path: Path | None = None
    checkout: Path | None = None
    if wheel is not None:
        wheel_path = Path(wheel).expanduser().resolve()
        if not wheel_path.is_file() or not re.fullmatch(r"mlops_workbench-[^-]+-.+\.whl", wheel_path.name):
            raise ValidationError(f"--wheel {wheel!r} is not an mlops_workbench wheel file", field="wheel")
    else:
        checkout = container.find_checkout()
        if checkout is None:
            raise fail(
                "this workbench is installed from a wheel, with no source to build one from: "
                "pass --wheel mlops_workbench-<version>-py3-none-any.whl",
                1,
            )
    with Client() as client:
        spec = client.get_endpoint(endpoint).spec
        if spec.features is not None:
            raise ValidationError(
                f"endpoint {endpoint!r} joins features from a Feast repository, which an exported image does "
                "not carry yet: export an endpoint called with its features",
                field="endpoint",
            )
        model, number = _chosen_version(spec, version, model)
        staging, created = _staging(directory)
        try:
            client.download_model(model, number, staging)
            (staging / "replica.json").write_text(
                container.replica_config(spec, model, number).model_dump_json(indent=2) + "\n"
            )
            if wheel_path is not None:
                shutil.copy2(wheel_path, staging / wheel_path.name)
            else:
                assert checkout is not None
                container.copy_source(checkout, staging / "source")
            (staging / "Dockerfile").write_text(
                container.dockerfile(spec, model, number, wheel=wheel_path.name if wheel_path else None)
            )
            (staging / ".dockerignore").write_text(container.DOCKERIGNORE + f"{EXPORT_MARKER}\n")
        except BaseException:
            _discard(staging, directory, created)
            raise
        _publish(staging, directory)
        shutil.rmtree(staging, ignore_errors=True)
    tag = f"IMAGE:{container.replica_id(spec.name, model, number)}"
    console.print(
        f"wrote {directory}: a replica of {model} v{number} for endpoint {endpoint!r}", soft_wrap=True
    )
    console.print(f"build: docker build -t {tag} {directory}", soft_wrap=True)
    console.print(f"run:   docker run -p {container.PORT}:{container.PORT} {tag}", soft_wrap=True)


_STORAGE_SCHEMES = (
    "s3://",
    "gs://",
    "pvc://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
)


@app.command("k8s")
@handle_errors
def export_k8s(
    endpoint: str = typer.Argument(..., help="the endpoint to describe"),
    out: str = typer.Option(..., "--out", help="directory for the manifests"),
    image: str = typer.Option(
        "workbench", "--image", help="the image repository; a version's tag is <endpoint>-<model>-v<version>"
    ),
    kserve: bool = typer.Option(False, "--kserve", help="a KServe InferenceService instead of Deployments"),
    storage_uri: str | None = typer.Option(
        None,
        "--storage-uri",
        help="where the cluster reads the model's files (--kserve): s3://, gs://, pvc://...",
    ),
    version: int | None = typer.Option(
        None,
        "--version",
        help="with --kserve: the version to serve (default: the one taking the most traffic)",
    ),
    model: str | None = typer.Option(
        None, "--model", help="with --version, when two of the endpoint's models have that version"
    ),
) -> None:
    """Kubernetes manifests: a Deployment and Service per version and the router (routes in a ConfigMap),
    or with --kserve an InferenceService on KServe's MLflow runtime over OIP v2."""
    from workbench.export import kubernetes

    settings = get_settings()
    directory = _export_dir(out, settings.allowed_roots)
    if kserve and (storage_uri is None or not storage_uri.startswith(_STORAGE_SCHEMES)):
        raise ValidationError(
            "--kserve needs --storage-uri, where KServe's storage initializer reads the model's MLflow files "
            f"({', '.join(_STORAGE_SCHEMES)}), got {storage_uri!r}",
            field="storage_uri",
        )
    if not re.fullmatch(r"[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?", image):
        raise ValidationError(f"--image {image!r} is not an image repository name", field="image")
    with Client() as client:
        spec = client.get_endpoint(endpoint).spec
        versions = (
            [_chosen_version(spec, version, model)]
            if kserve
            else list(
                dict.fromkeys(
                    [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
                )
            )
        )
        sizes: dict[tuple[str, int], int] = {}
        with tempfile.TemporaryDirectory(prefix="wb-export-") as scratch:
            for name, number in versions:  # memory requests follow the weights' size
                sizes[(name, number)] = _tree_bytes(
                    client.download_model(name, number, Path(scratch) / f"{name}-{number}")
                )
    staging, created = _staging(directory)
    try:
        if kserve:
            ((name, number),) = versions
            assert storage_uri is not None
            document = kubernetes.inference_service(spec, name, number, storage_uri, sizes[(name, number)])
            target_name = "inference-service.yaml"
            (staging / target_name).write_text(yaml.safe_dump(document, sort_keys=False))
        else:
            target_name = "manifests.yaml"
            documents = kubernetes.manifests(spec, image, sizes)
            (staging / target_name).write_text(yaml.safe_dump_all(documents, sort_keys=False))
    except BaseException:
        _discard(staging, directory, created)
        raise
    _publish(staging, directory)
    shutil.rmtree(staging, ignore_errors=True)
    console.print(f"wrote {directory / target_name}", soft_wrap=True)
    console.print(f"apply: kubectl apply -f {directory / target_name}", soft_wrap=True)
