"""`regbench release` (`make results`): rerun the published experiments and rewrite results/ from those runs.

    regbench release                                   # every published experiment, cpu profile
    regbench release --experiments default,probes      # some of them (the others' folders stay)
    regbench release --profile smoke --results /tmp/r  # a trial: toy sizes, another folder

Each experiment runs as its sweeps (`regbench run -m experiment=<name> ...`, with the released
checkpoints and calibrations) into `<runs>/<name>/<profile>`; its folder `results/<name>/` is
then rebuilt from those rows only: leaderboard.md and .csv (intervals, ties, ranks), the rows
(results.parquet, which `regbench.evaluate(compare=...)` reads), the probe table where there are
probes, the plots and report.html, and RELEASE.json. Every file's header names the date, the
commit, the machine (CPU, threads, GPU), the profile, the exact commands and which rows ran on
which device. Files of results/ that no release wrote (and no reference, weights or index) are
deleted, not kept beside. A run that dies leaves its sweep folder: rerunning resumes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from regbench.core.plugins import REPO_ROOT
from regbench.core.provenance import git_rev
from regbench.results import leaderboard, merge, references, training_curves
from regbench.results.report import write_report
from regbench.results.store import atomic_write_text

# the published experiments, each as its sweeps (overrides over `experiment=<name>`): operator
# mismatch has a model for CT only, so the probe table adds it as a sweep of its own; the task table
# evaluates CT on all its test phantoms and the BSD68 tasks on their first 8 images in the cpu profile
# (smoke keeps its own sizes)
CT_TASKS = "ct_parallel_ellipses,ct_fan_ellipses"
BSD68_TASKS = "deblur_gaussian_bsd68,deblur_motion_bsd68,mri_x4_bsd68,sr_x2_bsd68,inpaint_50_bsd68"
EXPERIMENTS: dict[str, list[list[str]]] = {
    "default": [[]],
    "tasks": [[f"task={CT_TASKS}"], [f"task={BSD68_TASKS}", "+sweep_data.cpu.n_test=8"]],
    "probes": [[], ["task=ct_parallel_ellipses", "probe=operator_mismatch"]],
    "training_schemes": [[]],
}
PERF = "perf"  # not a sweep: `regbench perf`, the speed of solves and training (perf.md)
CURVES = "training_curves"  # not a sweep: the released checkpoints' training curves, from their manifest
PUBLISHED = [*EXPERIMENTS, PERF, CURVES]
# a released report shows the central crop of each example reconstruction: its full-size PNGs (about 130 KB
# each) would make it megabytes in git; the run folder's own report keeps them whole
EXAMPLE_CROP = 128
KEEP = {"weights", "references.yaml", "README.md"}  # results/ entries that no release writes
STAMP = "RELEASE.json"


def machine() -> dict:
    """The CPU model, its threads, and the GPU if there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "threads": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu}


def sweep_command(experiment: str, overrides: list[str], profile: str, out: Path, device: str) -> list[str]:
    return [
        "regbench",
        "run",
        "-m",
        f"experiment={experiment}",
        f"profile={profile}",
        *overrides,
        f"out={out}",
        f"device={device}",
        "progress=false",
        "logger=none",
    ]


def run_sweeps(experiment: str, profile: str, out: Path, device: str) -> tuple[list[str], float]:
    """Run the experiment's sweeps into `out`; (the commands, wall seconds). A failed sweep is an error."""
    commands, t0 = [], time.perf_counter()
    sweeps = [["perf", f"out={out}", f"profile={profile}"]] if experiment == PERF else None
    for overrides in sweeps or EXPERIMENTS[experiment]:
        command = ["regbench", *overrides] if sweeps else sweep_command(experiment, overrides, profile, out, device)
        commands.append(shlex.join(command))
        print(f"release: {commands[-1]}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "regbench", *command[1:]], cwd=REPO_ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"release: sweep failed (exit {proc.returncode}): {commands[-1]}")
    return commands, time.perf_counter() - t0


def header(stamp: dict) -> str:
    """The provenance lines every released markdown file starts with."""
    m = stamp["machine"]
    devices = ", ".join(f"{d} ({n} rows)" for d, n in stamp["rows_by_device"].items())
    return "\n".join(
        [
            f"# {stamp['experiment']}: released results ({stamp['profile']} profile)",
            "",
            f"- date: {stamp['date']}; commit: `{stamp['commit']}`",
            f"- machine: {m['cpu']}, {m['threads']} threads (torch {m['torch_threads']})"
            + (f"; GPU: {m['gpu']}" if m["gpu"] else "; no GPU"),
            f"- rows by device: {devices}",
            f"- command: `{stamp['command']}`; "
            + (
                "sweeps: " + "; ".join(f"`{c}`" for c in stamp["sweeps"])
                if stamp["sweeps"]
                else "no sweep: read from results/weights/MANIFEST.json"
            ),
            *([f"- wall time of the sweeps: {stamp['wall_seconds'] / 60:.1f} min"] if stamp["sweeps"] else []),
            "",
            "",
        ]
    )


def swap_in(folder: Path, write: Callable[[Path], None], stamp: dict) -> list[str]:
    """Write a released folder beside `folder` (`write(staging)` plus RELEASE.json), then replace `folder`
    with it: a release that dies leaves the old folder whole. Returns its files."""
    staging = folder.with_name(f".{folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    atomic_write_text(staging / STAMP, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def write_experiment(rows: pd.DataFrame, folder: Path, sweep_folder: Path, stamp: dict) -> list[str]:
    """Rebuild results/<experiment>/ from the sweep's rows; its files."""
    return swap_in(folder, lambda staging: experiment_files(rows, staging, sweep_folder, stamp), stamp)


def experiment_files(rows: pd.DataFrame, staging: Path, sweep_folder: Path, stamp: dict) -> None:
    board = merge.write(rows, staging)
    head = header(stamp)
    atomic_write_text(staging / "leaderboard.md", head + (staging / "leaderboard.md").read_text())
    probes = sorted(p for p in board.probe.unique() if p != "nominal")
    if probes:
        parts = [head]
        for probe in probes:
            table = leaderboard.probe_table(board, probe)
            parts += [f"## {probe}", "", table.to_markdown(index=False), ""]
        atomic_write_text(staging / "probes.md", "\n".join(parts))
    write_report([sweep_folder], staging / "report.html", rows, board, example_crop=EXAMPLE_CROP)


def readme_table(board: pd.DataFrame, stamp: dict) -> str:
    """The nominal leaderboard of each task, compact, for the README (between its release markers), and the
    method x training table where an architecture ran under several schemes."""
    nominal = board[(board.probe == "nominal") & (board.level == 0)]
    lines = [
        f"Released by `{stamp['command']}` at `{stamp['commit']}` ({stamp['date']}, {stamp['profile']} profile, "
        f"{stamp['machine']['cpu']}, {stamp['machine']['threads']} threads"
        + (f", GPU {stamp['machine']['gpu']}" if stamp["machine"]["gpu"] else "")
        + f"): `results/{stamp['experiment']}/`. Rank: tied methods share it (Wilcoxon, 5%).",
        "",
    ]
    for task, part in nominal.groupby("task", sort=False):
        refs = references.with_references(part[["task", "method", "psnr_mean"]])["reference_psnr"].to_numpy()
        table = pd.DataFrame(
            {
                "rank": part["rank"].astype(int).to_numpy(),
                "method": part["method"].to_numpy(),
                "PSNR (dB) [95% CI]": [
                    f"{m:.2f} [{lo:.2f}, {hi:.2f}]"
                    for m, lo, hi in zip(part["psnr_mean"], part["psnr_ci_low"], part["psnr_ci_high"])
                ],
                "SSIM": part["ssim_mean"].map(lambda v: f"{v:.3f}").to_numpy(),
                "published": ["–" if v != v else f"{v:.2f}" for v in refs],
                "s/image": part["seconds_mean"].map(lambda v: f"{v:.2f}").to_numpy(),
                "train min": part["train_minutes"].map(lambda v: f"{v:.1f}").to_numpy(),
                "images": part["n_images"].to_numpy(),
            }
        )
        lines += [f"**{task}**", "", table.to_markdown(index=False, disable_numparse=True), ""]
    crossed = leaderboard.training_table(nominal)
    if not crossed.empty:
        lines += ["**Method x training** (PSNR, dB)", "", leaderboard.training_markdown(crossed), ""]
    return "\n".join(lines)


def update_readme(readme: Path, experiment: str, block: str) -> bool:
    """Replace the README's text between `<!-- release:<experiment> -->` and `<!-- /release:<experiment> -->`."""
    begin, end = f"<!-- release:{experiment} -->", f"<!-- /release:{experiment} -->"
    text = readme.read_text() if readme.is_file() else ""
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    atomic_write_text(readme, f"{head}{begin}\n{block.strip()}\n{end}{rest.split(end, 1)[1]}")
    return True


def prune(results: Path) -> list[str]:
    """Delete what no release wrote: results/ keeps its references, weights, index and released folders."""
    removed = []
    for entry in sorted(results.iterdir()):
        if entry.name in KEEP or (entry.is_dir() and (entry / STAMP).is_file()):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        removed.append(entry.name)
    return removed


def write_index(results: Path) -> None:
    """results/README.md: what each released folder holds, when and from which commit."""
    lines = [
        "# Released results",
        "",
        "Every file here is written by `regbench release` (`make results`) from its own runs; nothing is",
        "edited by hand. Each folder's RELEASE.json and file headers name the commit, machine, profile and",
        "commands. `references.yaml`: published values the leaderboards compare with; `weights/`: the",
        "released checkpoints and calibrations (`make train-release`).",
        "",
        "| experiment | profile | commit | date | rows | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for stamp_file in sorted(results.glob(f"*/{STAMP}")):
        s = json.loads(stamp_file.read_text())
        lines.append(
            f"| [{s['experiment']}]({s['experiment']}/) | {s['profile']} | `{s['commit']}` | "
            f"{s['date']} | {s['rows']} | {s['wall_seconds'] / 60:.1f} min |"
        )
    atomic_write_text(results / "README.md", "\n".join(lines) + "\n")


def write_perf(out: Path, folder: Path, stamp: dict) -> list[str]:
    """results/perf/: perf.md under the release header, with its two tables."""

    def write(staging: Path) -> None:
        for name in ("perf.csv", "perf_training.csv"):
            if (out / name).is_file():
                shutil.copy2(out / name, staging / name)
        atomic_write_text(staging / "perf.md", header(stamp) + (out / "perf.md").read_text())

    return swap_in(folder, write, stamp)


def write_curves(manifest: dict, folder: Path, stamp: dict) -> list[str]:
    """results/training_curves/: each released checkpoint's training curve (table and plot)."""

    def write(staging: Path) -> None:
        body = training_curves.table(manifest).to_markdown(index=False)
        about = (
            "Each released checkpoint's training quantity (moving average over a tenth of its history) at a quarter,"
            " half, three quarters and all of its training minutes, from results/weights/MANIFEST.json: the PSNR of"
            " training batches, the critic's gap (adversarial schemes) or the patches' NLL (patch priors);"
            " none is measured on test images. The plot: training-curves.png.\n"
        )
        atomic_write_text(staging / "training-curves.md", f"{header(stamp)}{about}\n{body}\n")
        training_curves.plot(manifest, staging / "training-curves.png")

    return swap_in(folder, write, stamp)


def manifest_rows(manifest: dict) -> pd.DataFrame:
    """One row per released checkpoint, with the device it was trained on (the stamp's rows)."""
    return pd.DataFrame([{"device": e.get("device", "unknown")} for e in manifest.values()], columns=["device"])


def release(
    experiments: list[str], profile: str, device: str, runs: Path, results: Path, command: str, readme: Path | None
) -> dict:
    unknown = [e for e in experiments if e not in PUBLISHED]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; published: {', '.join(PUBLISHED)}")
    results.mkdir(parents=True, exist_ok=True)
    summary = {}
    for experiment in experiments:
        out = runs / experiment / profile
        if experiment == CURVES:
            manifest = json.loads((results / "weights" / "MANIFEST.json").read_text())
            sweeps, seconds, rows = [], 0.0, manifest_rows(manifest)
        else:
            sweeps, seconds = run_sweeps(experiment, profile, out, device)
            rows = pd.read_csv(out / "perf.csv") if experiment == PERF else merge.load(out)
        stamp = {
            "experiment": experiment,
            "profile": profile,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_rev(),
            "machine": machine(),
            "command": command,
            "sweeps": sweeps,
            "wall_seconds": round(seconds, 1),
            "rows": len(rows),
            "rows_by_device": {str(k): int(v) for k, v in rows["device"].value_counts().sort_index().items()},
        }
        if experiment == PERF:
            files = write_perf(out, results / experiment, stamp)
        elif experiment == CURVES:
            files = write_curves(manifest, results / experiment, stamp)
        else:
            files = write_experiment(rows, results / experiment, out, stamp)
            if readme is not None and update_readme(
                readme, experiment, readme_table(leaderboard.aggregate(rows), stamp)
            ):
                print(f"release: {readme.name}'s {experiment} table rewritten", flush=True)
        summary[experiment] = {"seconds": seconds, "rows": len(rows), "files": files}
        print(f"release: results/{experiment}/ ({len(rows)} rows, {seconds / 60:.1f} min)", flush=True)
    removed = prune(results)
    write_index(results)
    return {"experiments": summary, "removed": removed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regbench release", description=__doc__.split("\n\n")[0])
    everything = ",".join(PUBLISHED)
    parser.add_argument("--experiments", default=everything, help=f"comma-separated; default: {everything}")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda: where the sweeps run")
    parser.add_argument("--runs", type=Path, default=REPO_ROOT / "runs" / "release", help="sweep folders")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="the folder to rewrite")
    parser.add_argument(
        "--readme", type=Path, default=REPO_ROOT / "README.md", help="tables between its release markers: rewritten"
    )
    args = parser.parse_args(argv)
    command = shlex.join(["regbench", "release", *(sys.argv[2:] if argv is None else argv)])
    try:
        done = release(
            [e for e in args.experiments.split(",") if e],
            args.profile,
            args.device,
            args.runs.resolve(),
            args.results.resolve(),
            command,
            args.readme.resolve(),
        )
    except (RuntimeError, ValueError, OSError) as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 2
    for name in done["removed"]:
        print(f"release: removed stale results/{name}")
    return 0
