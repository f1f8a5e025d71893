"""The one table of runner types: what each needs, and which path an execution of it takes.

Models (the `runner_type` field), the database's CHECK constraint, the pack
loader, the lifecycle's dispatch and the worker all read this table, and a
test holds the Literal in `models/packs.py` and the CHECK in the schema to
it, so adding a runner is adding a row here (and its implementation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Path = Literal["work", "workflow", "inquiry"]
Need = Literal["code", "http_config", "image", "workflow"]


@dataclass(frozen=True)
class RunnerKind:
    """One runner type.

    `path`: where dispatch sends its executions (the work queue; later a state
    machine start or an inquiry). `needs`: what an action of this type must
    carry — `code` means inline code or a file in the pack (`entry_point`).
    `process`: it runs tenant code as a process (so it has a pack to fetch).
    """

    name: str
    path: Path
    needs: tuple[Need, ...]
    process: bool

    @property
    def needs_code(self) -> bool:
        """Whether an action of this type runs code it must be given (inline or from the pack)."""
        return "code" in self.needs


RUNNERS: dict[str, RunnerKind] = {
    kind.name: kind
    for kind in (
        RunnerKind("python3", "work", ("code",), process=True),
        RunnerKind("shell", "work", ("code",), process=True),
        RunnerKind("node", "work", ("code",), process=True),
        RunnerKind("http", "work", ("http_config",), process=False),
        RunnerKind("container", "work", ("image",), process=True),
        RunnerKind("workflow", "workflow", ("workflow",), process=False),
        RunnerKind("inquiry", "inquiry", (), process=False),
    )
}
RUNNER_TYPES: tuple[str, ...] = tuple(RUNNERS)
# Runners whose code is a script in the pack (or inline): python3, shell, node.
SCRIPT_RUNNERS = frozenset(name for name, kind in RUNNERS.items() if kind.needs_code)


def kind_of(runner_type: str) -> RunnerKind | None:
    """The table row for `runner_type`; None for a type this version does not know."""
    return RUNNERS.get(runner_type)


@dataclass(frozen=True)
class ActionSpec:
    """What a runner is given about the action to run: typed, read once from the action's row."""

    ref: str
    runner_type: str
    entry_point: str | None = None
    code: str | None = None
    http_config: Mapping[str, Any] | None = None
    image: str | None = None
    timeout_s: float | None = None
    retry: Mapping[str, Any] | None = None
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any], secrets: tuple[str, ...] = ()) -> ActionSpec:
        """From an execution-for-run row (`db.executions.load_for_run`)."""
        return cls(
            ref=str(row["action_ref"]),
            runner_type=str(row["runner_type"]),
            entry_point=row.get("entry_point"),
            code=row.get("code"),
            http_config=row.get("http_config"),
            image=row.get("image"),
            timeout_s=float(row["timeout"]) if row.get("timeout") else None,
            retry=row.get("retry"),
            secrets=secrets,
        )

    def missing(self, has_pack_file: bool) -> str | None:
        """Why this action cannot run as declared (what its runner needs and it lacks), or None."""
        kind = kind_of(self.runner_type)
        if kind is None:
            return f"runner '{self.runner_type}' is not known to this version"
        for need in kind.needs:
            if need == "code" and self.code is None and not (self.entry_point and has_pack_file):
                return f"action {self.ref!r} has no inline code and no stored pack file to run"
            if need == "http_config" and not self.http_config:
                return f"action {self.ref!r} (runner 'http') has no http_config"
            if need == "image" and not self.image:
                return f"action {self.ref!r} (runner 'container') has no image"
        return None
