"""report.html and `make leaderboard`: a self-contained report that renders in headless Chromium; merging sweeps.

Chromium is Debian's `chromium` package (.ci/run installs it); it runs headless with its
network pointed at a closed local port, so a report that needed the network would show
broken parts, and the HTML is also checked to reference nothing outside itself.
"""

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_cli
from PIL import Image
from test_pipeline import METHODS

from regbench.results.merge import KEY as MERGE_KEY
from regbench.results.store import ResultStore

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-sync",
    "--disable-component-update",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",  # networking off: every request fails
]


def chromium(*args: str, tmp_path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "headless Chromium is needed: apt-get install -y chromium (.ci/run does this)"
    proc = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "regbench", "report", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


class Tables(HTMLParser):
    """Every <table> of a page as a list of rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def tables_of(html: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def first_column(table) -> list[str]:
    return [row[0] for row in table[1:]]


@pytest.fixture(scope="module")
def smoke_report(smoke_sweep):
    proc = report(str(smoke_sweep["out"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = smoke_sweep["out"] / "report.html"
    assert f"report: {path}" in proc.stdout
    return path


@pytest.fixture(scope="module")
def merged(smoke_sweep, tmp_path_factory):
    """Sweep 2: tv and wavelet_l1 under the noise sweep, plus a copy of sweep 1's tv rows (an overlap)."""
    root = tmp_path_factory.mktemp("merge")
    second, out = root / "second", root / "merged"
    proc = run_cli(
        "-m",
        "method=tv,wavelet_l1",
        "probe=noise_sweep",
        "profile=smoke",
        f"out={second}",
        "progress=false",
        cache=smoke_sweep["cache"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first_rows = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    tv_hash = first_rows.loc[first_rows.method == "tv", "config_hash"].iloc[0]
    shutil.copy(smoke_sweep["out"] / "rows" / f"{tv_hash}.parquet", second / "rows")
    ResultStore(second).refresh()
    proc = report(str(smoke_sweep["out"]), str(second), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"first": smoke_sweep["out"], "second": second, "out": out, "proc": proc}


def test_report_is_self_contained(smoke_report):
    html = smoke_report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script>" in html and "<style>" in html
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|<link\b""", html, re.I
    )
    images = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    convergence = re.findall(r'<img class=plot alt="convergence denoise_bsd68"', html)
    assert len(convergence) == 1  # the energy-based methods' PSNR-vs-iteration traces
    intervals = re.findall(r'<img class=plot alt="mean PSNR with 95% intervals denoise_bsd68"', html)
    assert len(intervals) == 1  # each method's mean with its bootstrap interval
    # 2 example images (ground truth, initializer, each method), the convergence and the interval plot
    assert len(images) == 2 * (2 + len(METHODS)) + 2


def test_report_can_show_central_crops_of_the_reconstructions(smoke_sweep):
    """A released report inlines the central crop of each example (its whole PNGs would be megabytes in git)."""
    import base64
    import io

    from regbench.results.merge import merge
    from regbench.results.report import render

    folders = [smoke_sweep["out"]]
    rows = merge(folders)

    def example_sizes(html):
        sizes = []
        for tag in re.findall(r"<img (?!class=plot)[^>]*>", html):
            blob = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]*)"', tag).group(1))
            sizes.append(Image.open(io.BytesIO(blob)).size)
        return sizes

    whole, cropped = render(folders, rows), render(folders, rows, example_crop=24)
    assert set(example_sizes(whole)) == {(64, 64)} and len(example_sizes(whole)) == 2 * (2 + len(METHODS))
    assert set(example_sizes(cropped)) == {(24, 24)} and len(example_sizes(cropped)) == len(example_sizes(whole))
    assert "its central 24x24 crop" in cropped and "the whole image" in whole


def test_report_renders_in_headless_chromium(smoke_report, smoke_sweep, tmp_path):
    shot = tmp_path / "report.png"
    chromium("--window-size=1400,2000", f"--screenshot={shot}", smoke_report.as_uri(), tmp_path=tmp_path)
    image = np.asarray(Image.open(shot).convert("RGB"))
    colors = np.unique(image.reshape(-1, 3), axis=0)
    assert image.shape[:2] == (2000, 1400) and len(colors) > 200, f"blank-looking screenshot: {len(colors)} colors"
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", smoke_report.as_uri(), tmp_path=tmp_path).stdout.decode()
    assert 'data-sortable="ready"' in dom  # the inline script ran
    tables = tables_of(dom)
    board, probe = tables[0], tables[1]
    assert board[0][:3] == ["method", "rank", "PSNR (dB)"] and sorted(first_column(board)) == METHODS
    assert sorted(first_column(probe)) == METHODS
    expected = pd.read_csv(smoke_sweep["out"] / "leaderboard.csv").sort_values("psnr_mean", ascending=False)
    assert first_column(board) == list(expected.method)  # best first
    published = {row[0]: row[board[0].index("published PSNR")] for row in board[1:]}
    assert published["crr"] == "28.10" and published["wcrr"] == "28.68" and published["tv"] == ""
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", dom)
    for method in METHODS:
        assert any(c.startswith(f"{method}<br>") and " dB" in c for c in captions)
    provenance = tables[-1]
    assert provenance[0][0] == "sweep folder" and provenance[1][0] == str(smoke_sweep["out"])


def test_clicking_a_header_sorts_the_table(smoke_report, smoke_sweep, tmp_path):
    page = tmp_path / "clicked.html"
    click = "<script>document.querySelectorAll('table')[0].querySelectorAll('th')[2].click();</script></body>"
    page.write_text(smoke_report.read_text().replace("</body>", click))
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", page.as_uri(), tmp_path=tmp_path).stdout.decode()
    board = tables_of(dom)[0]
    ascending = pd.read_csv(smoke_sweep["out"] / "leaderboard.csv").sort_values("psnr_mean").method
    assert first_column(board) == list(ascending)
    assert 'data-sort="asc"' in dom


def test_merging_two_sweeps_gives_the_union_without_duplicates(merged):
    KEY = MERGE_KEY + ["sample_seed"]  # samplers: one row per image and seed
    first = pd.read_parquet(merged["first"] / "results.parquet")
    second = pd.read_parquet(merged["second"] / "results.parquet")
    union = pd.read_parquet(merged["out"] / "results.parquet")
    overlap = first.merge(second[KEY], on=KEY)
    assert len(overlap) == 2  # the copied tv rows
    assert len(union) == len(first) + len(second) - len(overlap) == len(first) + 2 * 2 * 4
    assert not union.duplicated(KEY).any()
    assert set(map(tuple, union[KEY].astype(str).values)) == set(
        map(tuple, pd.concat([first, second])[KEY].astype(str).values)
    )
    board = pd.read_csv(merged["out"] / "leaderboard.csv")
    assert len(board) == len(METHODS) + 2 * 4  # nominal: every method; noise_sweep: 2 methods x 4 levels
    assert set(board.probe) == {"nominal", "noise_sweep"}
    md = (merged["out"] / "leaderboard.md").read_text()
    assert "## denoise_bsd68 / noise_sweep / level 2" in md
    assert f"report: {merged['out'] / 'report.html'}" in merged["proc"].stdout


def test_merged_report_shows_probe_tables_and_degradation_curves(merged, tmp_path):
    html = (merged["out"] / "report.html").read_text()
    assert 'alt="degradation curves denoise_bsd68 noise_sweep"' in html
    dom = chromium(
        "--virtual-time-budget=3000", "--dump-dom", (merged["out"] / "report.html").as_uri(), tmp_path=tmp_path
    ).stdout.decode()
    tables = tables_of(dom)
    assert sorted(first_column(tables[0])) == METHODS
    heads = [t[0] for t in tables]
    sweep = tables[
        heads.index(
            [
                "method",
                "PSNR @ level -1",
                "PSNR @ level 0",
                "PSNR @ level 1",
                "PSNR @ level 2",
                "SSIM @ level -1",
                "SSIM @ level 0",
                "SSIM @ level 1",
                "SSIM @ level 2",
            ]
        )
    ]
    assert sorted(first_column(sweep)) == ["tv", "wavelet_l1"]
    for level in (-1, 0, 1, 2):
        assert f"<h4>probe noise_sweep, level {level}</h4>" in dom
    provenance = tables[-1]
    assert [row[0] for row in provenance[1:]] == [str(merged["first"]), str(merged["second"]), "total"]


def test_merge_refuses_to_write_into_a_sweep_folder(merged):
    proc = report(str(merged["first"]), str(merged["second"]), "--out", str(merged["second"]))
    assert proc.returncode == 2 and "one of the merged sweep folders" in proc.stderr
    proc = report(str(merged["second"]), "--out", str(merged["first"]))
    assert proc.returncode == 2 and "is a sweep folder" in proc.stderr


def test_make_targets(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}  # a stray OUT in the environment does not redirect the runs
    make = subprocess.run(
        ["make", "-n", "benchmark", "leaderboard", "RESULTS=runs/a runs/b"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert make.returncode == 0, make.stderr
    assert "logger=wandb" in make.stdout
    assert f"regbench report {REPO / 'runs/cpu'}" in make.stdout
    assert f"regbench report {REPO / 'runs/a'} {REPO / 'runs/b'} --out {REPO / 'runs/leaderboard'}" in make.stdout
    smoke = subprocess.run(["make", "-n", "smoke"], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert f"regbench report {REPO / 'runs/smoke'}" in smoke.stdout  # smoke rows never land among the cpu rows
    usage = subprocess.run(["make", "-n", "leaderboard"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert usage.returncode != 0 and "usage: make leaderboard RESULTS=" in usage.stderr


def test_task_summary_puts_methods_side_by_side_with_their_compute():
    import pandas as pd
    from task_summary import summary

    rows = pd.DataFrame(
        [
            {
                "task": "ct_x",
                "method": m,
                "level": 0,
                "image_id": i,
                "psnr": p + i,
                "ssim": 0.5,
                "seconds": 30.0,
                "calib_seconds": c,
            }
            for m, p, c in [("tv", 30.0, 60.0), ("crr", 31.0, float("nan"))]
            for i in (0, 1)
        ]
        + [
            {
                "task": "ct_x",
                "method": "tv",
                "level": 1,
                "image_id": 0,
                "psnr": 0.0,
                "ssim": 0.0,
                "seconds": 999.0,
                "calib_seconds": 60.0,
            }
        ]
    )
    table = summary(rows, ["tv", "crr", "wcrr"]).splitlines()
    assert table[0] == "| task | images | tv | crr | wcrr | minutes (calibration + evaluation) |"
    assert table[2] == "| ct_x | 2 | 30.50 / 0.500 | 31.50 / 0.500 | – | 3 (tv 2, crr 1) |"
