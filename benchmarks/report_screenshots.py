"""Open the Snakemake report in headless Chromium, save screenshots of its views, and check what a reader sees.

    python benchmarks/report_screenshots.py results/report.html --out results/report_screenshots

Checks (exit status 1 and one line each when any fails):
* no docutils "System Message" (a broken caption or description) anywhere in the report;
* every table of results/tables/ (and the summary, DeLong and missingness tables) is an HTML entry, which the
  report shows inline rather than as a download;
* the landing page describes the run (and says "synthetic" for a run on the synthetic cohort).
Screenshots: the landing page, "About this run", every HTML table, and each figure of the MVI and grading
experiments, one PNG per view in `--out` (the report is a single-page app: each view is opened by a copy of
the report that navigates on load, as a reader's clicks would).

Needs a Chromium or Chrome binary (Debian: `apt-get install chromium`); `--chromium PATH` picks one. It is run
with --headless --no-sandbox --disable-gpu, no first-run, background networking, component updates or sync,
and a fresh --user-data-dir per view, so nothing of the machine's browser profile is read or changed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]
TABLE_ENTRY = re.compile(r"(results/tables/[\w.-]+\.html|results/mvi/summary\.html|results/mvi/delong_pairwise\.html|"
                         r"results/clinical/missingness\.html)")


def find_chromium(given: str | None) -> str:
    for name in ([given] if given else ["chromium", "chromium-browser", "google-chrome", "chrome"]):
        path = shutil.which(name) if name else None
        if path:
            return path
    sys.exit("report_screenshots: no Chromium found; install it (Debian: apt-get install chromium) or pass "
             "--chromium PATH")


def _script_variable(report_html: str, name: str):
    """The JSON value of `var <name> = ...;` in the report's own `<script id=...>` block for it."""
    script_id = name.replace("_", "-")
    match = re.search(rf'<script id="{script_id}">\s*var {name} = (.*?);\s*</script>', report_html, re.S)
    if not match:
        raise ValueError(f"no 'var {name} = ...;' in the report: not a Snakemake HTML report?")
    return json.loads(match.group(1))


def report_results(report_html: str) -> dict:
    """The report's results: path -> entry (`mime_type`, `data_uri`, `caption`, ...) plus its `category`."""
    results = _script_variable(report_html, "results")
    for category, subcategories in _script_variable(report_html, "categories").items():
        for paths in subcategories.values():
            for path in paths:
                results[path]["category"] = category
    return results


def report_problems(report_html: str, results: dict) -> list[str]:
    """What a reader would trip over; one line each."""
    problems = []
    if "System Message" in report_html:
        where = sorted({m.group(0)[:120] for m in re.finditer(r"System Message:[^<\"]*", report_html)})
        problems.append(f"the report holds docutils System Messages: {'; '.join(where[:5])}")
    tables = [path for path in results if TABLE_ENTRY.fullmatch(path)]
    if not any(p.startswith("results/tables/") for p in tables):
        problems.append("no table of results/tables/ is an HTML entry of the report")
    for path in tables:
        if results[path].get("mime_type") != "text/html":
            problems.append(f"{path} is in the report as {results[path].get('mime_type')}, not inline HTML")
    for path, entry in results.items():
        if path.startswith("results/tables/") and not path.endswith(".html"):
            problems.append(f"{path} is a download-only entry ({entry.get('mime_type')}); register its .html instead")
    text = _script_variable(report_html, "workflow_desc")
    if "What ran" not in text:
        problems.append("the landing page does not describe the run (no workflow description)")
    if "synthetic" in report_html.lower() and "synthetic" not in text.lower():
        problems.append("the run used the synthetic cohort but the landing page does not say so")
    return problems


def views(results: dict) -> list[tuple[str, list[str]]]:
    """(name, JavaScript steps run after loading) for every screenshot: what a reader's clicks do."""
    out = [("00_landing", [])]
    about = [p for p, e in results.items() if e.get("category") == "About this run"]
    for path in about:
        out.append(("01_about_this_run", _show(path, results)))
    for path in (p for p in results if TABLE_ENTRY.fullmatch(p)):
        out.append((f"10_table_{Path(path).stem}", _show(path, results)))
    figures = [p for p in results if p.endswith(".png") and "training_curves_" not in p]
    curves = [p for p in results if p.endswith(("training_curves_ours.png", "training_curves_teacher.png"))]
    for path in figures + curves:
        out.append((f"20_figure_{Path(path).stem}", _show(path, results)))
    return out


def _show(path: str, results: dict) -> list[str]:
    """Open the entry's category, its result panel (with the caption), then its content."""
    kind = "html" if results[path].get("mime_type") == "text/html" else "img"
    return [f"app.showCategory({json.dumps(results[path]['category'])});",
            f"app.showResultInfo({json.dumps(path)});",
            f"app.setView({{content: '{kind}', contentPath: results[{json.dumps(path)}].data_uri}});"]


def screenshot(chromium: str, report_html: str, steps: list[str], out_png: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory(prefix="cmdnet-report-") as tmp:
        page = Path(tmp) / "report.html"
        # One navigation step per 400 ms (React applies each state change before the next reads it), then
        # every box scrolled to the top. The last </body> is the page's own: bundled libraries hold the string.
        steps = [*steps, "document.querySelectorAll('*').forEach(n => { n.scrollTop = 0; });"]
        timers = "".join(f"setTimeout(() => {{ {step} }}, {400 * (k + 1)});" for k, step in enumerate(steps))
        hook = f"<script>window.addEventListener('load', () => {{ {timers} }});</script>"
        head, body_end, tail = report_html.rpartition("</body>")
        page.write_text(head + hook + body_end + tail if body_end else report_html + hook)
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
               f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=15000",
               f"--screenshot={out_png}", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0 or not out_png.exists():
            raise RuntimeError(f"chromium failed on {out_png.name}: {proc.stderr[-800:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the report (snakemake --report results/report.html)")
    parser.add_argument("--out", type=Path, default=Path("results/report_screenshots"),
                        help="directory for the PNGs (default: results/report_screenshots)")
    parser.add_argument("--chromium", default=None, help="Chromium/Chrome binary (default: found on PATH)")
    parser.add_argument("--size", default="1600x1000", help="window size WIDTHxHEIGHT (default: 1600x1000)")
    parser.add_argument("--check-only", action="store_true", help="run the checks, take no screenshot")
    args = parser.parse_args(argv)

    html = args.report.read_text(encoding="utf-8")
    results = report_results(html)
    problems = report_problems(html, results)
    for problem in problems:
        print(f"report_screenshots: {problem}", file=sys.stderr)
    if not args.check_only:
        chromium = find_chromium(args.chromium)
        width, height = (int(v) for v in args.size.lower().split("x"))
        args.out.mkdir(parents=True, exist_ok=True)
        for name, steps in views(results):
            screenshot(chromium, html, steps, args.out / f"{name}.png", (width, height))
            print(args.out / f"{name}.png")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
