"""``maed bench``: run the benchmark suites and write ``benchmarks/RESULTS.md``.

The suites (``benchmarks/``, pytest-benchmark) run in a child pytest; this module only describes
the machine and turns pytest-benchmark's JSON into the results page: p50 / p95 per case and back
end, the ratio of torch to ONNX Runtime on the CPU from the same run, the issue's targets, and
which back ends were skipped and why. The suites live in the source tree, not in the installed
package, so the command runs from a checkout. Nothing is built here: the kernel suite uses the CUDA
kernels where cmake built them (``maed.engine.ops.library``) and otherwise skips, saying how to build
them, as the results page then lists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import __version__
from ..zoo import PRODUCT

SUITES = Path(__file__).resolve().parents[3] / "benchmarks"
PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "cuda-bindings", "pyzmq", "pytest-benchmark")
TARGETS = (  # (model, case, back end, limit in ms): the targets on the 2-core development CPU
    (PRODUCT, "frame 256x256", "onnxruntime-cpu", 40.0),
    (PRODUCT, "update 32 rows x 256", "onnxruntime-cpu", 10.0),
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores = set(re.findall(r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text))
    return len(cores) or None


def _gpu() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none (no nvidia-smi)"
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return "; ".join(f"{name} (driver {driver})" for name, driver in (line.split(", ") for line in lines)) or "none"


def machine() -> dict[str, str]:
    """What the numbers were measured on: CPU, cores, GPU, OS and package versions."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": cpu_model(),
        "cores": f"{usable} usable, {os.cpu_count()} logical, {_physical_cores() or '?'} physical",
        "GPU": _gpu(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) + f", maed {__version__}",
    }


def _rows(report: dict) -> list[dict]:
    """One row per benchmark: its extra_info plus p50 / p95 / rounds of its timings in ms."""
    rows = []
    for bench in report["benchmarks"]:
        data = np.asarray(bench["stats"]["data"]) * 1e3
        rows.append(
            {
                "case": "",
                "backend": "",
                **bench["extra_info"],
                "name": bench["name"],
                "p50": float(np.percentile(data, 50)),
                "p95": float(np.percentile(data, 95)),
                "rounds": len(data),
            }
        )
    return rows


def _inference(row: dict) -> bool:
    # The bridge's update latency over the frame's height is the bridge table's (``_bridge_table``), not one call's.
    return row["case"].startswith(("band ", "frame ", "update ")) and not row["case"].startswith("update latency")


def _inference_table(rows: list[dict], model: str) -> list[str]:
    rows = [r for r in rows if r.get("model") == model and _inference(r)]
    if not rows:
        return []
    backends = sorted({r["backend"] for r in rows}, key=lambda b: (not b.startswith("onnx"), b))
    cases = sorted(
        {r["case"] for r in rows}, key=lambda c: (c.split()[0] != "band", c.split()[0] == "update", int(re.findall(r"\d+", c)[0]))
    )
    ratio = "onnxruntime-cpu" in backends and "torch-cpu" in backends
    head = ["case", *(f"{b} p50 / p95 ms" for b in backends)] + (["torch-cpu / onnxruntime-cpu (p50)"] if ratio else [])
    lines = [f"### {model} ({rows[0]['weights']} weights)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        cell = {r["backend"]: r for r in rows if r["case"] == case}
        cells = [f"{cell[b]['p50']:.1f} / {cell[b]['p95']:.1f}" if b in cell else "-" for b in backends]
        if ratio:
            both = "onnxruntime-cpu" in cell and "torch-cpu" in cell
            cells.append(f"{cell['torch-cpu']['p50'] / cell['onnxruntime-cpu']['p50']:.2f}" if both else "-")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return lines + [""]


KERNEL_IMPLS = ("maed", "torch", "copy")
"""benchmarks/test_kernels.py's back ends: our CUDA kernel, the same layer in torch (cuDNN), a device copy of the input."""


def _kernel_table(rows: list[dict]) -> list[str]:
    """The CUDA kernels against torch and a plain copy: time per launch, traffic rate, and torch's time over ours."""
    rows = [r for r in rows if r["case"].startswith("kernel ")]
    if not rows:
        return []
    head = ["layer, input, dtype", *(f"{impl} us / GB/s" for impl in KERNEL_IMPLS), "torch / maed"]
    lines = [
        "## CUDA kernels",
        "",
        "Time per launch (median of the timed rounds) and the rate of the launch's compulsory traffic (input read, "
        f"output written) on {rows[0].get('device', 'the GPU')}; copy is a device copy of the input, the memory "
        "system's ceiling for that traffic.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        cell = {r["backend"]: r for r in rows if r["case"] == case}
        cells = [f"{cell[i]['us_per_launch']:.1f} / {cell[i]['gb_per_s']:,.0f}" if i in cell else "-" for i in KERNEL_IMPLS]
        both = "maed" in cell and "torch" in cell
        cells.append(f"{cell['torch']['us_per_launch'] / cell['maed']['us_per_launch']:.2f}" if both else "-")
        lines.append(f"| {case.removeprefix('kernel ')} | " + " | ".join(cells) + " |")
    return lines + [""]


def _other_table(rows: list[dict]) -> list[str]:
    """Benchmarks that name no case, which no table above takes, by their pytest names."""
    rows = [r for r in rows if not r["case"]]
    if not rows:
        return []
    lines = [
        "## Other benchmarks",
        "",
        "Each timed round is what the benchmark names; where it feeds lines (`lines`), the p50 per line is beside it.",
        "",
        "| benchmark | p50 ms | p95 ms | rounds | lines a round | p50 ms per line |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_line = f"{r['p50'] / r['lines']:.3f}" if r.get("lines") else "-"
        lines.append(f"| {r['name']} | {r['p50']:.3f} | {r['p95']:.3f} | {r['rounds']} | {r.get('lines', '-')} | {per_line} |")
    return lines + [""]


def _bridge_table(rows: list[dict]) -> list[str]:
    latency = [r for r in rows if r["case"].startswith("line to denoised frame")]
    ingest = [r for r in rows if r["case"].startswith("ingest")]
    lines = []
    if latency:
        lines += [
            "Latency from a scan line's push (scan lines per second, each a trace and a retrace message) to "
            "the first denoised rows covering it (`frame.rows`, sent with every update), over the scan's rows:",
            "",
            "| rate, scan, back end | rows | p50 ms | p95 ms | max ms | updates |",
            "|---|---|---|---|---|---|",
        ]
        for r in sorted(latency, key=lambda r: int(re.findall(r"\d+", r["case"])[0])):
            lines.append(
                f"| {r['case'].removeprefix('line to denoised frame ')}, {r['rows']}x{r['cols']} scan, "
                f"{r['backend']} | {r['rows']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | {r['updates']} |"
            )
        lines.append("")
    for r in rows:
        if r["case"].startswith("update latency in frame height"):
            heights = sorted(int(k.split("_")[2]) for k in r if k.startswith("p95_ms_") and k.endswith("_rows"))
            lines += [
                f"{r['case']}, {r['cols']}-pixel lines, {r['backend']}: p95 "
                + ", ".join(f"{r[f'p95_ms_{h}_rows']} ms at {h} rows" for h in heights)
                + f" ({r['ratio']:g} x).",
                "",
            ]
    for r in ingest:
        lines.append(
            f"Ingest: {r['lines']:,} line messages of 256 float32 taken at {r['lines_per_s']:,} lines/s "
            f"(the controller pushed at {r['push_lines_per_s']:,} lines/s), {r['lines_lost']} lost, while "
            f"the worker denoised on {r['backend']}."
        )
        lines.append("")
    for r in rows:  # benchmarks/test_bridge_soak.py and test_bridge_kill.py (docs/reliability.md)
        if "rss_max_mb" in r:
            lines += [
                f"{r['case']}: {r['lines_sent']:,} lines at {r['lines_per_s']:,} lines/s, {r['lines_lost']} lost, "
                f"{r['journals_left']} journals left; resident memory at most {r['rss_max_mb']} MB; status "
                f"p95 {r['status_p95_ms']} ms, max {r['status_max_ms']} ms.",
                "",
            ]
        elif "frames_missing" in r:  # test_bridge_kill_nanonis.py: frames from the simulated Nanonis controller
            lines += [
                f"{r['case']}: frames missing {len(r['frames_missing'])}, partial scans saved "
                f"{r['partial_scans_saved']}, half-written folders seen {r['half_written_seen']}, journals left "
                f"{r['journals_left']}, scans resumed from a journal {r['scans_recovered']}; restart p50 "
                f"{r['restart_s_p50']} s.",
                "",
            ]
        elif "kills" in r:
            lines += [
                f"{r['case']}: scans missing {len(r['scans_missing'])}, differing {len(r['scans_differing'])}, "
                f"half-written folders seen {r['half_written_seen']}, journals left {r['journals_left']}; "
                f"restart p50 {r['restart_s_p50']} s.",
                "",
            ]
    return lines


def _targets(rows: list[dict]) -> list[str]:
    lines = []
    for model, case, backend, limit in TARGETS:
        row = next((r for r in rows if (r.get("model"), r["case"], r["backend"]) == (model, case, backend)), None)
        if row:
            verdict = "met" if row["p50"] <= limit else "MISSED (what limits it and what would reach it: docs/engines.md)"
            lines.append(f"- {model} {case} on {backend}: p50 {row['p50']:.1f} ms, target <= {limit:g} ms: {verdict}")
    pairs = {}
    for r in rows:
        if r["backend"] in ("onnxruntime-cpu", "torch-cpu") and _inference(r):
            pairs.setdefault((r["model"], r["case"]), {})[r["backend"]] = r["p50"]
    slower = [f"{m} {c}" for (m, c), p in pairs.items() if len(p) == 2 and p["onnxruntime-cpu"] > p["torch-cpu"]]
    if any(len(p) == 2 for p in pairs.values()):
        lines.append(
            "- ONNX Runtime at least as fast as torch on the CPU: "
            + ("met in every case" if not slower else "MISSED in " + ", ".join(slower))
        )
    for r in rows:
        if r["case"].startswith("soak"):
            ok = r["lines_lost"] == 0 and r["rss_max_mb"] <= 600 and r["status_max_ms"] <= 50
            lines.append(
                f"- soak: 0 lines lost, resident memory <= 600 MB, status within 50 ms: {r['lines_lost']} lost, "
                f"{r['rss_max_mb']} MB, {r['status_max_ms']} ms: {'met' if ok else 'MISSED'}"
            )
        if r["case"].startswith("update latency in frame height"):
            heights = [int(k.split("_")[2]) for k in r if k.startswith("p95_ms_") and k.endswith("_rows")]
            low, high = min(heights), max(heights)
            lines.append(
                f"- live update cost flat in frame height, p95 at {high} rows <= 1.1 x p95 at {low} rows: "
                f"{r[f'p95_ms_{high}_rows']} ms against {r[f'p95_ms_{low}_rows']} ms ({r['ratio']:g} x): "
                f"{'met' if r['ratio'] <= 1.1 else 'MISSED'}"
            )
        if r["case"].startswith("ingest"):
            ok = r["lines_per_s"] >= 10_000 and r["lines_lost"] == 0
            lines.append(
                f"- ingest >= 10,000 lines/s with none lost: {r['lines_per_s']:,} lines/s, "
                f"{r['lines_lost']} lost: {'met' if ok else 'MISSED'}"
            )
    return lines


GPU_PAGE = "RESULTS-gpu.md"
"""The page ``benchmarks/gpu_check.sh`` writes on a GPU machine, kept beside the CPU page, which points to it."""


def _gpu_page_note(page: Path) -> list[str]:
    """Where the GPU measurements are, which GPU and when, read off the GPU page."""
    text = page.read_text()
    gpu = re.search(r"^- GPU: (.+)$", text, re.M)
    when = re.search(r"^Written by .+? on (\d{4}-\d{2}-\d{2})", text, re.M)
    return [
        "## On a GPU",
        "",
        f"Measured by `sh benchmarks/gpu_check.sh` on {gpu[1] if gpu else 'a GPU'}"
        f"{f' on {when[1]}' if when else ''}: [{page.name}]({page.name}) (kernels, torch on CUDA, what was skipped there and why).",
        "",
    ]


def render(report: dict, info: dict[str, str], skipped: list[str], command: str, gpu_page: Path | None = None) -> str:
    """The results page for a pytest-benchmark JSON report; ``gpu_page``, where it exists, is pointed to."""
    rows = _rows(report)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Latency of one call, "
        "p50 / p95 over all timed rounds, after one untimed call. ONNX Runtime and torch use their default "
        "threads (one per physical core).",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()] + ["", "## Targets", ""]
    lines += (_targets(rows) or ["- none of the targets' cases ran here"]) + ["", "## Inference", ""]
    for model in (PRODUCT, "paper"):
        lines += _inference_table(rows, model)
    bridge = _bridge_table(rows)
    if bridge:
        lines += ["## Bridge", "", *bridge]
    lines += _kernel_table(rows)
    lines += _other_table(rows)
    if skipped:
        lines += ["## Skipped here", "", *(f"- {s}" for s in skipped), ""]
    if gpu_page is not None and gpu_page.is_file():
        lines += _gpu_page_note(gpu_page)
    return "\n".join(lines).rstrip() + "\n"


def _skipped(output: str) -> list[str]:
    """The skip reasons of pytest's ``-rs`` summary, one per reason, with how many tests it skipped."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.+)$", output, re.M):
        counts[match[2]] = counts.get(match[2], 0) + int(match[1])
    return [f"{reason} ({n} benchmark{'s' if n > 1 else ''})" for reason, n in counts.items()]


def run(out: Path, budget: float, select: str | None, keep_json: Path | None) -> int:
    """Run the suites, print pytest's output, write the results page; pytest's exit status."""
    if budget <= 0:
        raise ValueError(f"--budget must be positive seconds, got {budget:g}")
    if not SUITES.is_dir():
        raise ValueError(f"maed bench runs the suites of a source checkout; there is no {SUITES}")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = keep_json or Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES),
            "-p",
            "no:cacheprovider",
            "-rs",
            f"--benchmark-json={report_path}",
            f"--bench-budget={budget}",
            "--benchmark-columns=median,min,max,rounds",
            "--benchmark-sort=fullname",
        ]
        if select:
            command += ["-k", select]
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the cores skews every figure
        printed = _run_showing(command)
        if not report_path.is_file():
            raise ValueError(f"the benchmarks wrote no report (pytest exit status {printed.returncode})")
        report = json.loads(report_path.read_text())
    shown = "maed bench" + (f" --budget {budget:g}" if budget != 5.0 else "") + (f" -k '{select}'" if select else "")
    info = {**machine(), "load average before the run (1, 5, 15 min)": load}
    gpu_page = out.parent / GPU_PAGE if out.name != GPU_PAGE else None
    out.write_text(render(report, info, _skipped(printed.stdout), shown, gpu_page))
    print(f"maed: results written to {out}", file=sys.stderr)
    return printed.returncode


def _run_showing(command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` in the suites' folder, its output shown as it comes (a run of many benchmarks takes minutes,
    and one whose output came only at its end looked hung) and kept for the page."""
    lines = []
    with subprocess.Popen(command, cwd=SUITES.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as child:
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    return subprocess.CompletedProcess(command, child.returncode, "".join(lines), "")


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the ``maed`` command line."""
    p = sub.add_parser("bench", help="run the latency benchmarks of every back end present; write benchmarks/RESULTS.md")
    p.add_argument("--out", default=str(SUITES / "RESULTS.md"), help="results page (default: benchmarks/RESULTS.md)")
    p.add_argument(
        "--budget", type=float, default=5.0, metavar="SECONDS", help="timed seconds per benchmark (at least 10 rounds each; default: 5)"
    )
    p.add_argument("-k", dest="select", metavar="EXPR", help="run only the benchmarks pytest -k selects")
    p.add_argument("--json", metavar="PATH", help="also keep pytest-benchmark's JSON report here")
    p.set_defaults(run=lambda args: run(Path(args.out), args.budget, args.select, Path(args.json) if args.json else None))
