"""What a builder pass did: layer counts before and after, and one line per change."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

from edgevision.deploy.graph import op_counts


@dataclass(frozen=True)
class PassReport:
    """One pass's entry in the builder log.

    ``details`` has one line per rewrite (or per finding, for analysis passes such as fusion
    groups and concat elimination, which return the graph unchanged).
    """

    name: str
    ops_before: Counter[str]
    ops_after: Counter[str]
    details: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, name: str, before: onnx.ModelProto, after: onnx.ModelProto, details: list[str] | tuple[str, ...]
    ) -> PassReport:
        return cls(name, op_counts(before), op_counts(after), tuple(details))

    @property
    def layers_before(self) -> int:
        return sum(self.ops_before.values())

    @property
    def layers_after(self) -> int:
        return sum(self.ops_after.values())

    def op_changes(self) -> dict[str, int]:
        """Op type -> change in node count, for the op types whose count changed."""
        ops = self.ops_before.keys() | self.ops_after.keys()
        return {
            op: self.ops_after[op] - self.ops_before[op]
            for op in sorted(ops)
            if self.ops_after[op] != self.ops_before[op]
        }

    def __str__(self) -> str:
        changes = ", ".join(f"{op} {delta:+d}" for op, delta in self.op_changes().items())
        line = f"[{self.name}] layers {self.layers_before} -> {self.layers_after}" + (
            f" ({changes})" if changes else ""
        )
        return "\n".join([line, *(f"    {detail}" for detail in self.details)])
