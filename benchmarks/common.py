"""What every benchmark shares: the machine description and the result files (JSON plus a Markdown table)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def free_port() -> int:
    """A localhost port no one listens on now, for a server started next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ingest(project: Path) -> None:
    """`chatwright ingest` on `project` (incremental: unchanged files are kept); a fresh clone has no index, and a
    benchmark run on one would measure an assistant that declines every question."""
    result = subprocess.run([sys.executable, "-m", "chatwright.cli", "ingest", str(project)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`chatwright ingest {project}` failed ({result.returncode}):\n{result.stdout}"
                           f"{result.stderr}")


@dataclass(frozen=True)
class Target:
    """A metric's goal: `op` is '>=' or '<='."""

    metric: str
    op: str
    value: float

    def met(self, metrics: dict[str, Any]) -> bool | None:
        actual = metrics.get(self.metric)
        if not isinstance(actual, int | float):
            return None
        return actual >= self.value if self.op == ">=" else actual <= self.value


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def write_results(name: str, metrics: dict[str, Any], targets: list[Target], *, notes: str = "",
                  details: dict[str, Any] | None = None) -> Path:
    """Write results/NAME.json and results/NAME.md for a run made now, on this machine; returns the JSON path."""
    target_rows = [{"metric": t.metric, "target": f"{t.op} {t.value}", "met": t.met(metrics)} for t in targets]
    return write_payload({"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                          "machine": machine(), "metrics": metrics, "targets": target_rows, "notes": notes,
                          **({"details": details} if details else {})})


def write_payload(payload: dict[str, Any]) -> Path:
    """Write a result as results/NAME.json and a Markdown table beside it; returns the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name, notes = payload["benchmark"], payload["notes"]
    json_path = RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    lines = [f"# {name}", "", f"{payload['date']} on {payload['machine']['cpu']} "
             f"({payload['machine']['cores']} cores)", "", "| metric | value | target | met |", "|---|---|---|---|"]
    by_metric = {row["metric"]: row for row in payload["targets"]}
    for metric, value in payload["metrics"].items():
        row = by_metric.get(metric)
        met = "" if row is None else {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        lines.append(f"| {metric} | {_fmt(value)} | {row['target'] if row else ''} | {met} |")
    if notes:
        lines += ["", notes]
    (RESULTS_DIR / f"{name}.md").write_text("\n".join(lines) + "\n")
    return json_path


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
