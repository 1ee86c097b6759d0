"""The run report: one HTML page per run directory with the seed's table (expected beside
observed, every sub-check of the composed verdict), the switchover times, the transient
calls accepted and dropped with their codes, and a timeline per operation (every call a
bar from INVITE to its end, coloured by outcome; the fault window shaded from inject to
heal), plus results.json for tools. JUnit XML comes from pytest (--junitxml).

Every operation the session collected is a row, also one that errored before it wrote
a result, was deselected or never ran: its status then comes from pytest's outcome of
it (set-up error, skipped) or is `not run`. Nothing but a verdict of `ok` is green.

    python -m harness.report runs/latest
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from .history import calls as history_calls
from .history import load as load_history
from .history import of_kind

COLOURS = {"completed": "#2e7d32", "failed": "#f9a825", "unanswered": "#ef6c00",
           "dropped": "#c62828"}
STATUS_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "error": "#c62828",
                  "unknown": "#ef6c00", "n/a": "#757575", "not run": "#757575",
                  "skipped": "#757575"}


def timeline(scn_dir: Path, result: dict) -> str | None:
    """Draw the operation's calls; returns the PNG's file name, or None without data."""
    hist = scn_dir / "history.jsonl"
    if not hist.exists() or not result.get("t_fault"):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    events = load_history(hist)
    calls = sorted(history_calls(events), key=lambda c: c.invite_t)
    if not calls:
        return None
    t0 = result["t_fault"]
    classes = result.get("classes", {})
    fig, ax = plt.subplots(figsize=(10, min(0.05 * len(calls) + 1.5, 14)))
    for i, c in enumerate(calls):
        end = c.end_t or c.bye_ok_t or c.final_t or c.invite_t
        ax.plot([c.invite_t - t0, end - t0], [i, i], color=COLOURS.get(c.outcome, "grey"),
                linewidth=1.5, solid_capstyle="butt")
        if classes.get(c.call_id) == "transient":
            ax.plot([c.invite_t - t0], [i], marker=">", color="#6a1b9a", markersize=3)
    heals = [e.t for e in of_kind(events, "fault", action="heal")]
    t_heal = max(heals) if heals else None
    ax.axvspan(0, (t_heal - t0) if t_heal else ax.get_xlim()[1], color="#c62828", alpha=0.08,
               label="fault window (inject to heal)")
    ax.axvline(0, color="#c62828", linestyle="--", label="fault")
    sw = result.get("switchover_s")
    if sw is not None:
        ax.axvline(sw, color="#1565c0", linestyle=":", label=f"first new call answered ({sw:.2f} s)")
    for name, colour in COLOURS.items():
        ax.plot([], [], color=colour, linewidth=3, label=name)
    ax.plot([], [], marker=">", color="#6a1b9a", linestyle="", label="transient")
    ax.set_xlabel("seconds from the fault")
    ax.set_ylabel("calls (by INVITE time)")
    ax.set_title(f"{result['operation']}: {result['seed']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "timeline.png"
    fig.savefig(scn_dir / name, dpi=80)
    plt.close(fig)
    return name


def _status(result: dict | None, phases: dict) -> tuple[str, str]:
    """(status, why) of one operation from its result and pytest's phases."""
    setup, teardown = phases.get("setup", {}), phases.get("teardown", {})
    if result is None:
        if setup.get("outcome") == "failed":
            return "error", f"set-up failed: {setup.get('message', '')}"
        if setup.get("outcome") == "skipped":
            return "skipped", setup.get("message", "")
        return "not run", "deselected, or the session ended before it"
    status = result.get("status", "error")
    if teardown.get("outcome") == "failed":
        return "error", f"{status}, then the teardown failed: {teardown.get('message', '')}"
    return status, (result.get("verdict") or {}).get("error") or ""


def _check(name: str, result: dict):
    return next((c for c in (result.get("verdict") or {}).get("checks", [])
                 if c["name"] == name), None)


def _cell(status: str, text: str = "") -> str:
    colour = STATUS_COLOURS.get(status, "#000")
    return (f"<td><b style='color:{colour}'>{html.escape(status)}</b>"
            f"{'<br>' + html.escape(text) if text else ''}</td>")


def rows_of(run_dir: Path, planned: list[dict] | None, outcomes: dict | None) -> list[dict]:
    results = {}
    for res_file in sorted(run_dir.glob("*/result.json")):
        r = json.loads(res_file.read_text())
        results[r["operation"]] = r
    ops = list(planned or [])
    ops += [{k: r.get(k) for k in ("operation", "seed", "expected_transient", "expected_switchover")}
            for op_id, r in results.items() if op_id not in {p["operation"] for p in ops}]
    rows, seen = [], set()
    for op in ops:
        if op["operation"] in seen:
            continue
        seen.add(op["operation"])
        r = results.get(op["operation"])
        status, why = _status(r, (outcomes or {}).get(op["operation"], {}))
        rows.append({**op, "status": status, "why": why, "result": r})
    return rows


def write(run_dir: Path, planned: list[dict] | None = None, outcomes: dict | None = None) -> Path:
    rows = rows_of(run_dir, planned, outcomes)
    table = []
    for row in rows:
        r = row["result"] or {}
        png = timeline(run_dir / row["operation"], r) if r else None
        calls = _check("calls", r) or {}
        counts = (calls.get("data") or {}).get("counts") or {}
        codes = (calls.get("data") or {}).get("drop_codes") or {}
        trans = (f"{counts.get('transient', 0)}: {counts.get('transient_accepted', 0)} accepted, "
                 f"{counts.get('transient_dropped', 0)} dropped"
                 + (f" ({', '.join(f'{k}: {n}' for k, n in codes.items())})" if codes else "")
                 if counts else "")
        sw = (_check("switchover", r) or {}).get("data", {}).get("switchover_s")
        link = f"<a href='{html.escape(row['operation'])}/{png}'>timeline</a>" if png else ""
        subs = "".join(
            f"<div><b style='color:{STATUS_COLOURS.get(c['status'], '#000')}'>{html.escape(c['status'])}"
            f"</b> {html.escape(c['name'])}: {html.escape(c['detail'][:300])}</div>"
            for c in (r.get("verdict") or {}).get("checks", []))
        table.append(
            f"<tr><td>{html.escape(row['operation'])}</td><td>{html.escape(str(row['seed']))}</td>"
            f"<td>established kept; transient {html.escape(str(row['expected_transient']))}; new "
            f"accepted; {'switchover' if row.get('expected_switchover') else 'no switchover'}</td>"
            f"{_cell(row['status'], row['why'])}"
            f"<td>{'none' if sw is None else f'{sw:.3f} s'}</td><td>{html.escape(trans)}</td>"
            f"<td>{subs}</td>"
            f"<td>{link}</td></tr>")
    by = {}
    for row in rows:
        by[row["status"]] = by.get(row["status"], 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
    page = f"""<!doctype html><meta charset=utf-8><title>HA testbed run {run_dir.name}</title>
<style>body{{font:14px sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} td div{{font-size:12px}}</style>
<h1>HA testbed run {html.escape(run_dir.name)}</h1>
<p><b>{by.get('ok', 0)} of {len(rows)} operations as the seed documents</b> ({tally}).
An operation is ok only when every sub-check is ok or not applicable.
Switchover = fault to the first call set up after it and answered by the new active gateway.</p>
<table><tr><th>operation</th><th>seed</th><th>expected</th><th>verdict</th><th>switchover</th>
<th>transient calls</th><th>sub-checks</th><th>plot</th></tr>{''.join(table)}</table>
{''.join(f'<h3>{html.escape(row["operation"])}</h3><img src="{row["operation"]}/timeline.png">'
         for row in rows if (run_dir / row["operation"] / "timeline.png").exists())}
"""
    out = run_dir / "report.html"
    out.write_text(page)
    (run_dir / "results.json").write_text(json.dumps(
        [{**{k: v for k, v in row.items() if k != "result"}, **(row["result"] or {}),
          "status": row["status"]} for row in rows], indent=2, default=str))
    return out


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/latest").resolve()))
