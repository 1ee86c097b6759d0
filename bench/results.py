"""Benchmark results as data: every measurement a bench script takes, kept raw in
results.json with a summary per (figure, labels), rendered as results.md (a table per
figure, the ratios, the notes) and a PNG per figure that has a `fault` or `kind` label
(every run a dot over a box, per fault).

Several scripts share one directory when BENCH_DIR is set (`make bench`): each loads the
results.json it finds there and adds to it. Without BENCH_DIR a script gets its own
runs/bench-<time>/.

    r = Results()
    r.add("switchover_s", 0.42, "s", fault="kill-master-gateway")
    r.ratio("host over keepalived", "switchover_s", {"fault": "kill-host"},
            "keepalived_switchover_s", {"fault": "kill-host"})
    r.save()

    python bench/results.py runs/bench-X     re-render results.md and the plots, print the md
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP_LABELS = ("fault", "kind")          # a figure with one of these gets a plot per kind
TIMER_ENV = re.compile(r"^(TB|TMEDIA)_\w+_MS$")
P99_NEEDS = 100       # below this many runs the nearest-rank p99 is the max, and is called so


def default_dir() -> Path:
    """BENCH_DIR when set (several scripts, one result), else a fresh runs/bench-<time>."""
    env = os.environ.get("BENCH_DIR")
    return Path(env) if env else ROOT / "runs" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"


def summarize(values: list[float]) -> dict:
    xs = sorted(values)
    n = len(xs)
    return {"n": n, "min": xs[0], "median": statistics.median(xs),
            # nearest rank: the smallest value with at least 99 % of the runs at or below it
            "p99": xs[math.ceil(0.99 * n) - 1], "p99_is_max": n < P99_NEEDS,
            "max": xs[-1], "mean": statistics.fmean(xs),
            "stdev": statistics.stdev(xs) if n > 1 else None}


def _key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)      # a rate of 300.0 reads 300


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={_label(v)}" for k, v in labels.items()) or "(no labels)"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(r) + " |" for r in rows])


class Results:
    def __init__(self, out_dir: Path | str | None = None, script: str | None = None):
        self.dir = Path(out_dir) if out_dir is not None else default_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.json"
        self.script = script or Path(sys.argv[0]).name
        self.measurements: list[dict] = []
        self.notes: dict = {}
        self.ratios: list[dict] = []
        self.units: dict[str, str] = {}
        if self.path.exists():
            self._load()

    def _load(self):
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict) or "measurements" not in data:
            raise ValueError(f"{self.path} is not a bench results file (no 'measurements')")
        self.notes = data.get("notes", {})
        self.ratios = data.get("ratios", [])
        for m in data["measurements"]:
            self._append(m)

    def _append(self, m: dict):
        known = self.units.setdefault(m["figure"], m["unit"])
        if known != m["unit"]:
            raise ValueError(f"figure {m['figure']!r} is in {known!r}, not {m['unit']!r}")
        self.measurements.append(m)

    def add(self, figure: str, value: float, unit: str, **labels):
        """One measurement of `figure`; measurements with the same labels are runs of it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{figure} {_labels_text(labels)}: {value!r} is not a finite number")
        for k, v in labels.items():
            if not isinstance(v, (str, int, float)):
                raise TypeError(f"{figure}: label {k}={v!r} is not a str or number")
        self._append({"figure": figure, "value": value, "unit": unit, "labels": labels,
                      "script": self.script, "t": round(time.time(), 3)})

    def note(self, key: str, value):
        """A free-form fact about the runs (machine, commit, settings); a later one wins."""
        self.notes[key] = value

    def note_environment(self, **settings):
        """The facts every bench script records, plus its own settings (its arguments)."""
        self.note("git commit", _git_commit())
        self.note("cpu count", os.cpu_count())
        self.note("machine", f"{platform.node()} ({platform.machine()}, {platform.system()})")
        for k in sorted(os.environ):
            if TIMER_ENV.match(k):
                self.note(k, os.environ[k])
        if settings:
            self.note(f"{self.script} settings", settings)

    def groups(self) -> dict[tuple, dict]:
        """(figure, labels key) -> {figure, labels, unit, values}, in order of first run."""
        out: dict[tuple, dict] = {}
        for m in self.measurements:
            g = out.setdefault((m["figure"], _key(m["labels"])),
                               {"figure": m["figure"], "labels": m["labels"], "unit": m["unit"],
                                "values": []})
            g["values"].append(m["value"])
        return out

    def summary(self) -> list[dict]:
        return [{"figure": g["figure"], "labels": g["labels"], "unit": g["unit"],
                 **summarize(g["values"])} for g in self.groups().values()]

    def ratio(self, name: str, numerator_figure: str, numerator_labels: dict,
              denominator_figure: str, denominator_labels: dict):
        """Record `name` = median(numerator) / median(denominator), each side one
        (figure, exact labels) group; recomputed whenever the results are rendered."""
        groups = self.groups()
        for fig, labels in ((numerator_figure, numerator_labels),
                            (denominator_figure, denominator_labels)):
            if (fig, _key(labels)) not in groups:
                raise KeyError(f"ratio {name!r}: no measurements of {fig} {_labels_text(labels)}")
        self.ratios = [r for r in self.ratios if r["name"] != name]
        self.ratios.append({"name": name,
                            "numerator": {"figure": numerator_figure, "labels": numerator_labels},
                            "denominator": {"figure": denominator_figure,
                                            "labels": denominator_labels}})

    def ratio_values(self) -> list[dict]:
        groups, out = self.groups(), []
        for r in self.ratios:
            sides = {}
            for side in ("numerator", "denominator"):
                g = groups.get((r[side]["figure"], _key(r[side]["labels"])))
                sides[side] = {**r[side], "unit": g and g["unit"], "n": len(g["values"]) if g else 0,
                               "median": statistics.median(g["values"]) if g else None}
            num, den = sides["numerator"]["median"], sides["denominator"]["median"]
            out.append({"name": r["name"], **sides,
                        "ratio": num / den if num is not None and den else None})
        return out

    def save(self) -> Path:
        """Write results.json, then results.md and the plots; returns results.md."""
        self.path.write_text(json.dumps(
            {"notes": self.notes, "measurements": self.measurements, "ratios": self.ratios,
             "summary": self.summary(), "ratio_values": self.ratio_values()},
            indent=2, default=str))
        return self.render()

    def render(self) -> Path:
        """results.md and the plots from what is loaded (results.json is not rewritten)."""
        md = self.dir / "results.md"
        md.write_text(self.markdown(self.plots()))
        return md

    def markdown(self, pngs: dict[str, str] | None = None) -> str:
        pngs = pngs or {}
        out = [f"# Benchmarks {self.dir.name}", ""]
        by_figure: dict[str, list[dict]] = {}
        for s in self.summary():
            by_figure.setdefault(s["figure"], []).append(s)
        for fig, rows in by_figure.items():
            keys = list(dict.fromkeys(k for s in rows for k in s["labels"]))
            out += [f"## {fig} ({rows[0]['unit']})", ""]
            if fig in pngs:
                out += [f"![{fig}]({pngs[fig]})", ""]
            out += _table(keys + ["runs", "min", "median", "p99", "max", "unit"],
                          [[_label(s["labels"].get(k, "")) for k in keys]
                           + [str(s["n"]), _fmt(s["min"]), _fmt(s["median"]),
                              "= max" if s["p99_is_max"] else _fmt(s["p99"]), _fmt(s["max"]),
                              s["unit"]] for s in rows]) + [""]
        if any(s["p99_is_max"] for rows in by_figure.values() for s in rows):
            out += [f"p99 is nearest-rank; with fewer than {P99_NEEDS} runs it is the max, "
                    "and says so.", ""]
        if self.ratios:
            out += ["## Ratios (of the medians)", ""]
            out += _table(["ratio", "numerator", "median", "n", "denominator", "median", "n", "ratio"],
                          [[r["name"],
                            f"{r['numerator']['figure']} {_labels_text(r['numerator']['labels'])}",
                            _fmt(r["numerator"]["median"]), str(r["numerator"]["n"]),
                            f"{r['denominator']['figure']} {_labels_text(r['denominator']['labels'])}",
                            _fmt(r["denominator"]["median"]), str(r["denominator"]["n"]),
                            _fmt(r["ratio"])] for r in self.ratio_values()]) + [""]
        if self.notes:
            out += ["## Notes", ""]
            out += _table(["note", "value"], [[k, str(v)] for k, v in self.notes.items()]) + [""]
        return "\n".join(out)

    def plots(self) -> dict[str, str]:
        """figure -> PNG file name, for every figure with a fault/kind label."""
        by_figure: dict[str, list[dict]] = {}
        for g in self.groups().values():
            by_figure.setdefault(g["figure"], []).append(g)
        return {fig: _plot(self.dir, fig, groups) for fig, groups in by_figure.items()
                if any(k in g["labels"] for g in groups for k in GROUP_LABELS)}


def _plot(out_dir: Path, figure: str, groups: list[dict]) -> str:
    """Every run a dot over a box, one column per label set (the fault kind first)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def order(g):
        return tuple(str(g["labels"].get(k, "")) for k in GROUP_LABELS) + (_labels_text(g["labels"]),)
    groups = sorted(groups, key=order)
    names = ["\n".join(f"{k}={_label(v)}" if k not in GROUP_LABELS else _label(v)
                       for k, v in g["labels"].items()) for g in groups]
    values = [g["values"] for g in groups]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(groups) + 2), 4.5))
    ax.boxplot(values, widths=0.5, showfliers=False)       # the dots show every run
    for i, vs in enumerate(values, start=1):
        # spread the dots evenly across the box (no randomness: the same data, the same plot)
        xs = [i] if len(vs) == 1 else [i - 0.15 + 0.3 * j / (len(vs) - 1) for j in range(len(vs))]
        ax.plot(xs, vs, "o", color="#1565c0", alpha=0.6, markersize=4)
    ax.set_xticks(range(1, len(groups) + 1), names, fontsize=7,
                  rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    flat = [v for vs in values for v in vs]
    if min(flat) > 0 and max(flat) / min(flat) > 100:         # more than two decades
        ax.set_yscale("log")
    ax.set_ylabel(f"{figure} ({groups[0]['unit']})")
    ax.set_title(f"{figure}: every run, per kind (n = {', '.join(str(len(v)) for v in values)})",
                 fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    name = re.sub(r"[^\w.-]", "_", figure) + ".png"
    fig.savefig(out_dir / name, dpi=80)
    plt.close(fig)
    return name


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}{' (uncommitted changes)' if dirty else ''}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/results.py runs/bench-X", file=sys.stderr)
        return 2
    d = Path(argv[0])
    if not (d / "results.json").exists():
        print(f"error: no results.json in {d}", file=sys.stderr)
        return 2
    print(Results(d).render().read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
