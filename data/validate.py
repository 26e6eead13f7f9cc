"""Apply row rules: every row read is either accepted or quarantined with the rules it broke."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.schema import TableSpec


@dataclass(frozen=True)
class Validated:
    """The outcome of validating one table; `read == accepted + quarantined` always holds."""

    table: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def read(self) -> int:
        return len(self.accepted) + len(self.quarantined)


def validate_table(spec: TableSpec, frame: pd.DataFrame) -> Validated:
    """Split `frame` into accepted rows and quarantined rows (with `rule` and `reason` columns)."""
    frame = frame.reset_index(drop=True)
    if "source_row" not in frame.columns:
        # 1-based line number in the source file, counting the header as line 1.
        frame.insert(0, "source_row", np.arange(2, len(frame) + 2, dtype=np.int64))
    broken = pd.DataFrame({rule.name: rule.check(frame).fillna(True).astype(bool) for rule in spec.rules})
    bad = broken.any(axis=1) if len(spec.rules) else pd.Series(False, index=frame.index)
    names = {rule.name: rule.description for rule in spec.rules}
    quarantined = frame[bad].copy()
    broken_rules = broken[bad].apply(lambda row: [name for name in row.index if row[name]], axis=1)
    quarantined["rule"] = [",".join(rules) for rules in broken_rules] if len(quarantined) else []
    quarantined["reason"] = (
        ["; ".join(names[name] for name in rules) for rules in broken_rules] if len(quarantined) else []
    )
    accepted = frame[~bad].reset_index(drop=True)
    return Validated(spec.name, accepted, quarantined.reset_index(drop=True))
