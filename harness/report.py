"""The run report: one HTML page per run directory with the seed's table (expected beside
observed), the switchover times, and a timeline per scenario (every call a bar from
INVITE to its end, coloured by class and outcome, the fault and the switchover marked),
plus results.json for tools. JUnit XML comes from pytest (--junitxml).

    python -m harness.report runs/latest
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from .history import calls as history_calls
from .history import load as load_history

COLOURS = {"completed": "#2e7d32", "failed": "#f9a825", "unanswered": "#ef6c00",
           "dropped": "#c62828"}


def timeline(scn_dir: Path, result: dict) -> str | None:
    """Draw the scenario's calls; returns the PNG's file name, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    events = load_history(scn_dir / "history.jsonl")
    calls = sorted(history_calls(events), key=lambda c: c.invite_t)
    if not calls:
        return None
    t0 = result["t_fault"]
    classes = result["verdict"].get("classes", {})
    fig, ax = plt.subplots(figsize=(10, 0.06 * len(calls) + 1.5))
    for i, c in enumerate(calls):
        end = c.end_t or c.bye_ok_t or c.final_t or c.invite_t
        ax.plot([c.invite_t - t0, end - t0], [i, i], color=COLOURS.get(c.outcome, "grey"),
                linewidth=2, solid_capstyle="butt")
        if c.answer_t:
            ax.plot([c.answer_t - t0], [i], marker="|", color="black", markersize=3)
        if classes.get(c.call_id) == "transient":
            ax.plot([c.invite_t - t0], [i], marker=">", color="#6a1b9a", markersize=3)
    ax.axvline(0, color="#c62828", linestyle="--", label="fault")
    sw = result["verdict"].get("switchover_s")
    if sw is not None:
        ax.axvspan(0, sw, color="#c62828", alpha=0.12, label=f"until first new call answered ({sw:.2f} s)")
    for name, colour in COLOURS.items():
        ax.plot([], [], color=colour, linewidth=3, label=name)
    ax.set_xlabel("seconds from the fault")
    ax.set_ylabel("calls (by INVITE time)")
    ax.set_title(f"{result['operation']}: {result['seed']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "timeline.png"
    fig.savefig(scn_dir / name, dpi=90)
    plt.close(fig)
    return name


def write(run_dir: Path) -> Path:
    rows, results = [], []
    for res_file in sorted(run_dir.glob("*/result.json")):
        result = json.loads(res_file.read_text())
        results.append(result)
        png = timeline(res_file.parent, result)
        v = result["verdict"]
        sw = "none" if v.get("switchover_s") is None else f"{v['switchover_s']:.3f} s"
        counts = ", ".join(f"{k} {n}" for k, n in v["counts"].items())
        pc = result.get("post_checks") or []
        post = (f"{sum(c['ok'] for c in pc)}/{len(pc)} ok" + "".join(
            f"<br>FAILED {html.escape(c['name'])}: {html.escape(c['detail'])}" for c in pc
            if not c["ok"])) if pc else "n/a"
        bad = "<br>".join(html.escape(str(x)) for x in result["summary"].splitlines()[1:][:8])
        m = result.get("media") or {}
        media = (f"{m['streams']} streams, largest gap {m['largest_gap_ms']:.0f} ms "
                 f"(median {m['median_largest_gap_ms']:.0f} ms), fewest packets {m['min_packets']}"
                 if m.get("streams") else "no stream across the fault")
        rows.append(
            f"<tr class={'ok' if v['ok'] else 'bad'}><td>{html.escape(result['operation'])}</td>"
            f"<td>{html.escape(result['seed'])}</td>"
            f"<td>established kept; transient {result['expected_transient']}; new accepted; "
            f"{'switchover' if result.get('expected_switchover', True) else 'no switchover'}</td>"
            f"<td>{sw}</td><td>{counts}</td><td>{'OK' if v['ok'] else 'FAILED'}<br>{bad}</td>"
            f"<td>{post}</td><td>{media}</td>"
            f"<td>{f'<a href={res_file.parent.name}/{png}>timeline</a>' if png else ''}</td></tr>")
    page = f"""<!doctype html><meta charset=utf-8><title>HA testbed run {run_dir.name}</title>
<style>body{{font:14px sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} tr.ok td:nth-child(6){{color:#2e7d32}}
tr.bad td:nth-child(6){{color:#c62828;font-weight:bold}}</style>
<h1>HA testbed run {html.escape(run_dir.name)}</h1>
<p>{sum(r['verdict']['ok'] for r in results)} of {len(results)} operations as the seed documents.
Switchover = fault to the first call set up after it and answered by the new active gateway.</p>
<table><tr><th>operation</th><th>seed</th><th>expected</th><th>switchover</th><th>calls</th>
<th>observed</th><th>post-switchover checks</th><th>media of the calls across the fault</th>
<th>plot</th></tr>{''.join(rows)}</table>
{''.join(f'<h3>{html.escape(r["operation"])}</h3><img src="{r["operation"]}/timeline.png">'
         for r in results if (run_dir / r["operation"] / "timeline.png").exists())}
"""
    out = run_dir / "report.html"
    out.write_text(page)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return out


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/latest").resolve()))
