"""At the end of a sweep: one table of every job's overrides and metrics, best first (CSV, Markdown, stdout).

Jobs are ranked by downstream value (gain in test accuracy of the fixed classifier from adding generated data,
`metrics.downstream`) when any job has it, else by final FID. `diagnoses` lists each job's training-failure
episodes (ganrun.diagnostics).

With `ema.enabled` (the default) the EMA G's final metrics have their own columns (`FID_ema`, ...), next to raw
G's; the ranking stays by raw G's FID.

FID depends on the number of generated samples (it falls as they grow), so every FID comes with its count:
`final_samples` for the final evaluation (metrics.final_num_samples), `best_samples` for the best evaluation
during training (metrics.num_samples). The Markdown table puts a count shared by all jobs into the header
(`FID@50000`) and keeps the count columns only when jobs differ.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml

from ganrun.checkpoint import write_text_atomic
from ganrun.downstream import summary_values

FINAL_METRICS = ("FID", "KID", "IS", "precision", "recall", "classes_covered")
EMA_COLUMNS = tuple(f"{name}_ema" for name in FINAL_METRICS)  # the EMA G's final evaluation (ema.enabled)
METRIC_COLUMNS = (*FINAL_METRICS, *EMA_COLUMNS, "final_samples", "best_FID", "best_step", "best_samples",
                  "accuracy_real", "accuracy_real+generated", "CAS", "downstream_gain", "diagnoses", "loss/D",
                  "loss/G", "step")
# The EMA G is scored on as many samples as raw G in the final evaluation.
SAMPLE_COUNTS = {"FID": "final_samples", "FID_ema": "final_samples", "best_FID": "best_samples"}
FAILED_FILE = "failed.txt"  # a sweep job that stopped with an error writes it there (ganrun.cli)


def _samples_at(job_dir: Path, step) -> int | None:
    """Generated samples of raw G's evaluation during training at `step` (metrics.jsonl)."""
    log_file = job_dir / "metrics.jsonl"
    if step is None or not log_file.is_file():
        return None
    for line in log_file.read_text().splitlines():
        record = json.loads(line)
        if (record.get("step") == step and record.get("generator", "raw") == "raw"
                and record.get("section", "metrics") == "metrics"):  # not the final report at the same step
            return record.get("protocol", {}).get("n_generated")
    return None


def job_row(job_dir: Path) -> dict:
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    row = {"job": int(job_dir.name.split("_", 1)[0]) if job_dir.name[:1].isdigit() else job_dir.name,
           "dir": job_dir.name, "overrides": " ".join(overrides), "status": "no metrics.json (failed or running)"}
    report_file = job_dir / "metrics.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        final = (report.get("final") or {}).get("metrics", {})
        extractor = (report.get("final") or {}).get("extractor")
        final_ema = (report.get("final_ema") or {}).get("metrics", {})
        row.update({k: final.get(k) for k in FINAL_METRICS})
        row.update({f"{k}_ema": final_ema.get(k) for k in FINAL_METRICS})
        row["final_samples"] = (report.get("final") or {}).get("protocol", {}).get("n_generated")
        best = report["best"]
        row.update({"best_FID": best["FID"], "best_step": best["step"], "step": report["step"],
                    "best_samples": _samples_at(job_dir, best["step"]) if best["FID"] is not None else None,
                    **report.get("losses", {}), "extractor": extractor, "status": "done"})
        row["diagnoses"] = "; ".join(_episode(e) for e in report.get("diagnostics") or []) or None
    if (job_dir / FAILED_FILE).is_file():
        error = (job_dir / FAILED_FILE).read_text().strip().splitlines() or [""]
        row["status"] = "failed: " + error[0][:200]
    downstream = _downstream(job_dir, report if report_file.is_file() else {})
    if downstream:
        row.update(summary_values(downstream))
    return row


def _episode(episode: dict) -> str:
    return f"{episode['kind']} {episode['first_step']}-{'' if episode.get('open') else episode['last_step']}"


def _downstream(job_dir: Path, report: dict) -> dict | None:
    """The end-of-run downstream result in metrics.json, else one written by `ganrun-classify` (downstream.json)."""
    if report.get("downstream"):
        return report["downstream"]
    written = job_dir / "downstream.json"
    return json.loads(written.read_text()) if written.is_file() else None


def _sort_key(row: dict):
    fid = row.get("FID")
    return (fid is None, fid if fid is not None else 0.0, str(row["job"]))


def _downstream_key(row: dict):
    gain = row.get("downstream_gain")
    return (gain is None, -gain if gain is not None else 0.0, str(row["job"]))


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(sweep_dir: Path) -> tuple[Path, Path, str] | None:
    jobs = sorted(p for p in Path(sweep_dir).iterdir() if (p / ".hydra" / "overrides.yaml").is_file())
    if not jobs:
        return None
    rows = [job_row(job) for job in jobs]
    by_downstream = any(row.get("downstream_gain") is not None for row in rows)
    rows.sort(key=_downstream_key if by_downstream else _sort_key)
    columns = ["job", "overrides", *METRIC_COLUMNS, "extractor", "status", "dir"]
    csv_path, md_path = Path(sweep_dir) / "summary.csv", Path(sweep_dir) / "summary.md"
    csv_text = io.StringIO(newline="")
    writer = csv.DictWriter(csv_text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({c: row.get(c) for c in columns} for row in rows)
    write_text_atomic(csv_path, csv_text.getvalue())  # a sweep killed while writing keeps the previous summary
    shown = [c for c in columns if c != "dir" and any(row.get(c) is not None for row in rows)]
    headers = {c: c for c in shown}
    shared = set()
    for metric, count in SAMPLE_COUNTS.items():
        counts = {row.get(count) for row in rows if row.get(metric) is not None}
        if len(counts) == 1 and None not in counts and count in shown:  # one count for all: into the header
            headers[metric] = f"{metric}@{counts.pop()}"
            shared.add(count)
    shown = [c for c in shown if c not in shared]
    lines = ["| " + " | ".join(headers[c] for c in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in shown) + " |" for row in rows]
    table = "\n".join(lines) + "\n"
    order = ("downstream gain (accuracy of real+generated minus real, higher is better)" if by_downstream
             else "final FID (lower is better)")
    write_text_atomic(md_path, f"# Sweep {sweep_dir}\n\nSorted by {order}; jobs without it last. "
                       "FID is the final evaluation, best_FID the best one during training; @N is the number of "
                       "generated samples each was measured on (FID falls as N grows: compare like with like).\n\n"
                       + table)
    return csv_path, md_path, table
