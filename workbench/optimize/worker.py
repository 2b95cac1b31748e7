"""``python -m workbench.optimize.worker JOB.json``: make one variant of a model and measure it beside its parent.

Runs in a child of the control plane, which stays free of torch and whose request threads must not
share a GIL with minutes of export, training and timing. The child writes the variant's MLflow model
directory and ``result.json`` (every figure of parent and variant); it registers nothing: the control
plane applies the gate to the figures and registers, so a crashed or killed worker leaves no version.

Both models are loaded and run through the replica's own loading code (``load_model``), so an ONNX
variant is judged by exactly the onnxruntime session a replica would serve it with.
"""

from __future__ import annotations

import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from workbench.errors import ValidationError, WorkbenchError
from workbench.optimize.job import OptimizationJob
from workbench.optimize.methods import Method, parse_method
from workbench.optimize.quality import agreement, quality, scores_of, task_of
from workbench.optimize.student import ScoreKind

_EVAL_CHUNK = 4096
_MIN_EVAL_ROWS = 50
_TRANSFER_COPIES = 8
_JITTER = 0.1
_PRUNE_EPOCHS = 4
_DISTILL_EPOCHS = 20


@dataclass(frozen=True)
class _Rows:
    """The reference split in two: rows a trained variant may learn from, rows every model is judged on."""

    eval_matrix: np.ndarray[Any, Any]
    eval_columns: dict[str, np.ndarray[Any, Any]] | None
    eval_target: np.ndarray[Any, Any]
    transfer_matrix: np.ndarray[Any, Any]
    integer_columns: list[int]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = OptimizationJob.model_validate_json(Path(args[0]).read_bytes())
    result_path = job.output_dir / "result.json"
    try:
        result = run(job)
    except Exception as exc:
        error = exc if isinstance(exc, WorkbenchError) else None
        payload = {
            "ok": False,
            "error": {
                "type": error.error_type if error else "internal_error",
                "message": error.message if error else f"{type(exc).__name__}: {exc}",
                "details": error.details if error else {"traceback": traceback.format_exc()[-2000:]},
            },
        }
        result_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))
        return 1
    result_path.write_bytes(orjson.dumps({"ok": True, **result}, option=orjson.OPT_SERIALIZE_NUMPY))
    return 0


def run(job: OptimizationJob) -> dict[str, Any]:
    from workbench.serving.model import load_model

    method = parse_method(job.method)
    started = time.perf_counter()
    parent = load_model(job.parent_dir, "cpu", threads=job.threads)
    rows = _split_reference(job, parent.schema)
    parent_scores = _scores(parent.runner, rows.eval_matrix, rows.eval_columns)
    task = task_of(rows.eval_target)
    kind: ScoreKind = "probability" if task == "classification" and _within_unit(parent_scores) else "value"

    variant_dir = job.output_dir / "variant"
    shutil.rmtree(variant_dir, ignore_errors=True)
    build = _build_variant(job, method, parent, rows, kind, variant_dir)
    variant = load_model(variant_dir, "cpu", threads=job.threads)
    variant_scores = _scores(variant.runner, rows.eval_matrix, rows.eval_columns)

    from workbench.optimize.footprint import replica_rss_mb, size_on_disk
    from workbench.optimize.timing import batch_of, paired_latency

    latency: dict[str, list[dict[str, float]]] = {}
    for batch in sorted({1, job.serving_batch}):
        item = batch_of(rows.eval_matrix, batch, rows.eval_columns)
        latency[str(batch)] = paired_latency([parent.runner, variant.runner], item)

    rss = (
        replica_rss_mb([job.parent_dir, variant_dir], job.serving_batch, job.threads)
        if job.measure_rss
        else None
    )

    def block(index: int, directory: Path, scores: np.ndarray[Any, Any], loaded: Any) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "quality": quality(task, rows.eval_target, scores),
            "latency_ms": {batch: runs[index] for batch, runs in latency.items()},
            "size_bytes": size_on_disk(directory),
            "flavor": loaded.flavor,
            "parameters": loaded.details.get("parameters"),
        }
        if rss is not None:
            figures["replica_rss_mb"] = rss[index]
        return figures

    return {
        "method": method.spelling,
        "task": task,
        "score_kind": kind,
        "evaluation_rows": int(rows.eval_matrix.shape[0]),
        "serving_batch": job.serving_batch,
        "threads": job.threads,
        "parent": block(0, job.parent_dir, parent_scores, parent),
        "variant": block(1, variant_dir, variant_scores, variant),
        "agreement": agreement(parent_scores, variant_scores),
        "build": build,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _split_reference(job: OptimizationJob, schema: Any) -> _Rows:
    from workbench.registry.reference import read_reference
    from workbench.serving.codec import decode_mlflow

    frame = read_reference(job.reference_path)
    if job.target not in frame.columns:
        raise ValidationError(
            f"models:/{job.model}/{job.version}'s reference data has no target column {job.target!r} to "
            "evaluate a variant on",
            field="model",
        )
    if schema.columns is None:
        raise ValidationError(
            "only models with a column signature can be optimised (their reference rows are the inputs)",
            field="model",
        )
    frame = frame.dropna(subset=[job.target]).reset_index(drop=True)
    order = np.random.default_rng(job.seed).permutation(len(frame))
    half = len(frame) // 2
    evaluation = frame.iloc[np.sort(order[half:])].reset_index(drop=True)
    transfer = frame.iloc[np.sort(order[:half])].reset_index(drop=True)
    if len(evaluation) < _MIN_EVAL_ROWS:
        raise ValidationError(
            f"the reference data holds {len(frame)} labelled rows; at least {2 * _MIN_EVAL_ROWS} are needed "
            "(half to judge the variant on, half for methods that train)",
            field="model",
        )
    names = [column.name for column in schema.columns]

    def decoded(part: pd.DataFrame) -> Any:
        body = orjson.dumps(
            {"dataframe_split": {"columns": names, "data": part[names].to_numpy().tolist()}},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        return decode_mlflow(body, schema)

    eval_decoded = decoded(evaluation)
    integer_columns = [i for i, column in enumerate(schema.columns) if column.dtype in ("long", "integer")]
    return _Rows(
        eval_matrix=eval_decoded.matrix,
        eval_columns=eval_decoded.columns,
        eval_target=evaluation[job.target].to_numpy(dtype=np.float64),
        transfer_matrix=decoded(transfer).matrix,
        integer_columns=integer_columns,
    )


def _scores(
    runner: Any, matrix: np.ndarray[Any, Any], columns: dict[str, Any] | None
) -> np.ndarray[Any, Any]:
    from workbench.optimize.timing import batch_of

    chunks = []
    for start in range(0, matrix.shape[0], _EVAL_CHUNK):
        stop = min(start + _EVAL_CHUNK, matrix.shape[0])
        part = {k: v[start:stop] for k, v in columns.items()} if columns is not None else None
        item = batch_of(matrix[start:stop], stop - start, part)
        outputs = runner.run([item])
        chunks.append(
            scores_of(
                outputs[runner.output_names[0]]
                if runner.output_names[0] in outputs
                else next(iter(outputs.values()))
            )
        )
    return np.concatenate(chunks)


def _within_unit(scores: np.ndarray[Any, Any]) -> bool:
    return bool(np.all((scores >= 0.0) & (scores <= 1.0)))


def _torch_module(parent: Any, method: Method) -> Any:
    # The module itself, not the TorchScript trace the replica runs: methods rewrite its layers.
    module = getattr(parent.runner, "eager", None)
    if module is None:
        raise ValidationError(
            f"{method.spelling} works on torch models and this version's flavour is {parent.flavor!r}: it "
            "cannot be converted",
            field="method",
            flavor=parent.flavor,
        )
    return module


def _build_variant(
    job: OptimizationJob, method: Method, parent: Any, rows: _Rows, kind: ScoreKind, destination: Path
) -> dict[str, Any]:
    from workbench.optimize import packaging, torch_variants

    build: dict[str, Any] = {}
    if method.kind == "onnx-int8" and parent.flavor == "onnx":
        source = packaging.onnx_file(job.parent_dir)
        packaging.save_onnx_int8(source, job.parent_dir, destination, build)
        return build
    module = _torch_module(parent, method)
    if callable(getattr(module, "folded", None)):
        build["folded"] = "the parent's own folded() form (e.g. weight normalisation folded into weights)"
    if method.kind == "dynamic-int8":
        packaging.save_torch(torch_variants.dynamic_int8(module), job.parent_dir, destination)
    elif method.kind in ("onnx", "onnx-int8"):
        packaging.save_onnx(
            torch_variants.folded(module),
            job.parent_dir,
            destination,
            rows.eval_matrix,
            build,
            int8=method.kind == "onnx-int8",
        )
    elif method.kind == "prune":
        assert method.amount is not None
        pruned, shape = torch_variants.prune_hidden_units(module, method.amount)
        build.update(shape)
        build["fine_tune"] = _fit(pruned, parent, rows, kind, _PRUNE_EPOCHS, job.seed)
        packaging.save_torch(pruned, job.parent_dir, destination)
    else:
        from workbench.optimize.student import build_student

        assert method.hidden_sizes is not None
        transfer = _transfer_rows(rows, job.seed)
        student = build_student(transfer, rows.integer_columns, method.hidden_sizes, kind)
        build["parameters"] = sum(p.numel() for p in student.parameters())
        build["distillation"] = _fit(
            student, parent, rows, kind, _DISTILL_EPOCHS, job.seed, transfer=transfer
        )
        packaging.save_torch(student, job.parent_dir, destination)
    return build


def _fit(
    module: Any,
    parent: Any,
    rows: _Rows,
    kind: ScoreKind,
    epochs: int,
    seed: int,
    transfer: np.ndarray[Any, Any] | None = None,
    learning_rate: float = 3e-3,
) -> dict[str, Any]:
    """Fit ``module`` to the parent's scores on the transfer rows (never on the rows it is judged on)."""
    from workbench.optimize.student import fit_to_teacher

    inputs = transfer if transfer is not None else _transfer_rows(rows, seed)
    teacher = _scores(parent.runner, inputs, None).astype(np.float32)
    logits = getattr(module, "raw", None) or getattr(module, "logits", None)
    report = fit_to_teacher(
        module,
        inputs,
        teacher,
        kind,
        epochs=epochs,
        logits=logits,
        seed=seed,
        learning_rate=learning_rate,
    )
    return {
        "rows": report.rows,
        "epochs": report.epochs,
        "steps": report.steps,
        "final_loss": round(report.final_loss, 5),
        "learning_rate": learning_rate,
        "labels_used": False,
    }


def _transfer_rows(rows: _Rows, seed: int) -> np.ndarray[Any, Any]:
    """The transfer half of the reference plus jittered copies: more points where the teacher is asked.

    Numeric columns move by a tenth of their spread (clipped to the observed range); a small integer
    column (a category) keeps its code nine times in ten and otherwise takes one drawn from its column.
    """
    rng = np.random.default_rng(seed + 1)
    base = rows.transfer_matrix.astype(np.float32)
    low, high = base.min(axis=0), base.max(axis=0)
    spread = base.std(axis=0)
    copies = [base]
    for _ in range(_TRANSFER_COPIES):
        noisy = base + rng.normal(0.0, 1.0, base.shape).astype(np.float32) * (_JITTER * spread)
        for column in rows.integer_columns:
            redraw = rng.random(base.shape[0]) < 0.1
            noisy[:, column] = np.where(redraw, rng.choice(base[:, column], base.shape[0]), base[:, column])
        copies.append(np.clip(noisy, low, high))
    return np.concatenate(copies).astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())
