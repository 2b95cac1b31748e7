"""Where a rollback goes: a pure function of the endpoint's revision history and its rejected versions.

Rollback is an undo stack over *settled* revisions, never a guess from audit reason strings:

* the target is the newest revision before the current one that is settled (not a rollout's
  transitional step), routes traffic differently from now, and routes nothing to a rejected version;
* when the current revision is itself a rollback, the search starts below the revision it restored,
  so repeated rollbacks step further back instead of oscillating between two states (go forward
  again with an explicit ``to_revision``);
* an explicit ``to_revision`` is taken as asked, except onto a rejected version without ``force``;
* an alert's rollback action is idempotent: when the current revision is already that alert's
  rollback, there is nothing to do.

No clock, no I/O: the control plane reads the history, calls this, and applies the plan with
optimistic concurrency on ``plan.from_revision``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from workbench.errors import ConflictError, NotFoundError
from workbench.revisions.model import Revision, RevisionCause, routes_label


@dataclass(frozen=True)
class RollbackPlan:
    from_revision: int
    target: Revision | None  # None: the endpoint already serves what was asked; nothing to do
    skipped: tuple[tuple[int, str], ...]  # newer revisions passed over, with why
    message: str

    @property
    def changes_traffic(self) -> bool:
        return self.target is not None


def _rejected_in(revision: Revision, rejected: Collection[tuple[str, int]]) -> list[str]:
    return [f"{model} v{version}" for model, version, _ in revision.routes if (model, version) in rejected]


def _describe_skips(skipped: Sequence[tuple[int, str]]) -> str:
    if not skipped:
        return ""
    groups: list[tuple[list[int], str]] = []
    for number, why in skipped:
        if groups and groups[-1][1] == why:
            groups[-1][0].append(number)
        else:
            groups.append(([number], why))
    parts = []
    for numbers, why in groups:
        span = str(numbers[0]) if len(numbers) == 1 else f"{min(numbers)}-{max(numbers)}"
        parts.append(f"{span} ({why})")
    return "; skipped revisions " + ", ".join(parts)


def revision_before_rollout(history: Sequence[Revision], rollout_id: str) -> int | None:
    """The revision that served before a rollout's first traffic change: what undoing it restores."""
    firsts = [r.revision for r in history if r.rollout_id == rollout_id]
    if not firsts:
        return None
    earlier = [r.revision for r in history if r.revision < min(firsts)]
    return max(earlier) if earlier else None


def plan_rollback(
    history: Sequence[Revision],
    rejected: Collection[tuple[str, int]],
    *,
    to_revision: int | None = None,
    force: bool = False,
    alert: str | None = None,
) -> RollbackPlan:
    """Plan a rollback of the endpoint whose revisions, oldest first, are ``history``.

    Raises ``NotFoundError`` for an unknown ``to_revision`` and ``ConflictError`` when there is nowhere
    to go or the explicit target routes to a rejected version without ``force``.
    """
    if not history:
        raise ConflictError("the endpoint has no recorded revisions to roll back to")
    ordered = sorted(history, key=lambda r: r.revision)
    current = ordered[-1]
    by_number = {r.revision: r for r in ordered}
    name = current.endpoint
    now = f"revision {current.revision} ({routes_label(current.spec)})"

    if alert is not None and current.cause.is_rollback and current.alert == alert:
        return RollbackPlan(
            current.revision,
            None,
            (),
            f"{name} was already rolled back by alert {alert} at {now}; nothing to do",
        )

    if to_revision is not None:
        target = by_number.get(to_revision)
        if target is None:
            raise NotFoundError(
                f"endpoint {name!r} has no revision {to_revision} "
                f"(its revisions are {ordered[0].revision}-{current.revision})",
                endpoint=name,
                revision=to_revision,
            )
        bad = _rejected_in(target, rejected)
        if bad and not force:
            raise ConflictError(
                f"revision {to_revision} of {name!r} routes to {', '.join(bad)}, rejected by its rollout's "
                "analysis on this endpoint; pass force to roll back onto it anyway",
                endpoint=name,
                revision=to_revision,
                rejected=bad,
            )
        if target.routes == current.routes:
            return RollbackPlan(
                current.revision,
                None,
                (),
                f"{name} already serves what revision {to_revision} served, at {now}; nothing to do",
            )
        return RollbackPlan(
            current.revision,
            target,
            (),
            f"rolled back {name} from {now} to revision {target.revision} ({routes_label(target.spec)}), "
            "as asked" + (" (forced onto a rejected version)" if bad else ""),
        )

    anchor = current
    visited = {current.revision}
    while anchor.cause.is_rollback and anchor.restores is not None and anchor.restores not in visited:
        restored = by_number.get(anchor.restores)
        if restored is None:
            break
        visited.add(restored.revision)
        anchor = restored

    skipped: list[tuple[int, str]] = []
    for candidate in reversed([r for r in ordered if r.revision < anchor.revision]):
        if candidate.cause is RevisionCause.ROLLOUT_STEP:
            skipped.append((candidate.revision, "rollout steps"))
            continue
        if candidate.cause is RevisionCause.EXPERIMENT:
            skipped.append((candidate.revision, "an experiment's split"))
            continue
        bad = _rejected_in(candidate, rejected)
        if bad:
            skipped.append((candidate.revision, f"route to rejected {', '.join(bad)}"))
            continue
        if not candidate.routes:
            skipped.append((candidate.revision, "no traffic"))
            continue
        if candidate.routes == current.routes:
            skipped.append((candidate.revision, "same traffic as now"))
            continue
        undone = (
            f"undoing revision {anchor.revision} ({anchor.cause.value})"
            if anchor is not current
            else f"undoing the {current.cause.value} at revision {current.revision}"
        )
        return RollbackPlan(
            current.revision,
            candidate,
            tuple(skipped),
            f"rolled back {name} from {now} to revision {candidate.revision} "
            f"({routes_label(candidate.spec)}), {undone}{_describe_skips(skipped)}",
        )
    raise ConflictError(
        f"endpoint {name!r} has no earlier revision to return to from {now}{_describe_skips(skipped)}",
        endpoint=name,
        revision=current.revision,
    )
