"""The `regbench` command: one entry point, one subcommand per job.

regbench run [-m] method=... task=... probe=... profile=...   a run or a Hydra multirun
regbench report RESULTS... [--out DIR]                         leaderboard + HTML report, merged
regbench perf out=DIR [methods=...]                            speed of solves and training
regbench train-release [method=...] [profile=cpu]              retrain the released checkpoints
regbench release-calibrations method=... task=...              release cached calibrations
regbench download-data [--root DIR]                            BSDS500 from its canonical URL
regbench schemes [profile=smoke]                               which training schemes each method accepts
regbench evaluate module.path:Name [--tasks ...] [--probes ...]  benchmark a model from your own code
regbench release [--experiments default,...] [--profile cpu]    rerun the published experiments, rewrite results/
"""

from __future__ import annotations

import sys
from typing import Callable


def _run(argv: list[str]) -> int | None:
    from regbench.cli.run import cli

    return cli(argv)


def _report(argv: list[str]) -> int | None:
    from regbench.results.report import main

    return main(argv)


def _perf(argv: list[str]) -> int | None:
    from regbench.cli.perf import main

    return main(argv)


def _train_release(argv: list[str]) -> int | None:
    from regbench.training.release import main

    return main(argv)


def _release_calibrations(argv: list[str]) -> int | None:
    from regbench.calibration.release import main

    return main(argv)


def _download(argv: list[str]) -> int | None:
    from regbench.cli.download import main

    return main(argv)


def _schemes(argv: list[str]) -> int | None:
    from regbench.cli.schemes import main

    return main(argv)


def _evaluate(argv: list[str]) -> int | None:
    from regbench.cli.evaluate import main

    return main(argv)


def _release(argv: list[str]) -> int | None:
    from regbench.results.publish import main

    return main(argv)


COMMANDS: dict[str, Callable[[list[str]], int | None]] = {
    "run": _run,
    "report": _report,
    "perf": _perf,
    "train-release": _train_release,
    "release-calibrations": _release_calibrations,
    "download-data": _download,
    "schemes": _schemes,
    "evaluate": _evaluate,
    "release": _release,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"regbench: error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from regbench.core.allocator import tune_malloc

    tune_malloc()
    return int(COMMANDS[command](rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
