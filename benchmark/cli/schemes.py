"""`regbench schemes`: which training schemes each trained method accepts.

    regbench schemes [profile=smoke]

One line per registered method that trains, one column per scheme of configs/training/: `default`
(the method's own, `train.scheme`), `yes` (compatible: `training=<scheme>` trains it) or `-`; below
the table, what each incompatible method lacks. The check is the one the sweep pre-check runs, on
the method built at the profile's sizes (no training, no data).
"""

from __future__ import annotations

import pandas as pd

from regbench.core.instantiate import build
from regbench.core.registry import compose, known
from regbench.training.schemes import load_scheme


def compatibility(profile: str = "smoke") -> tuple[pd.DataFrame, dict[str, str]]:
    """(table: method x scheme -> default/yes/-, why: "method x scheme" -> what the method lacks)."""
    schemes = {name: load_scheme(name) for name in known("training")}
    lines, why = [], {}
    for method_name in known("method"):
        cfg = compose([f"method={method_name}", f"profile={profile}"])
        if cfg.method.get("train") is None:
            continue
        method, own = build(cfg.method.model), cfg.method.train.get("scheme")
        line = {"method": method_name}
        for name, scheme in schemes.items():
            lacks = scheme.incompatibility(method)
            line[name] = "default" if name == own else ("yes" if lacks is None else "-")
            if lacks is not None and name != own:
                why[f"{method_name} x {name}"] = lacks
        lines.append(line)
    return pd.DataFrame(lines), why


def main(argv: list[str]) -> int:
    profile = next((a.split("=", 1)[1] for a in argv if a.startswith("profile=")), "smoke")
    table, why = compatibility(profile)
    print(table.to_markdown(index=False))
    print("\n-: the scheme needs what the method lacks:")
    for pair, lacks in why.items():
        print(f"  {pair}: {lacks}")
    return 0
