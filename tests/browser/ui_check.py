#!/usr/bin/env python3
"""Checks porin's flows UI in a headless Chromium.

Loads the UI, waits until every expected service-map edge and flow-table row
is on the page (or the timeout passes), always saves a full-page screenshot,
prints what it found and exits 0 when all expectations hold, 1 otherwise.
A JavaScript error on the page (uncaught exception or console error) also
fails the check.

    python3 tests/browser/ui_check.py --url http://127.0.0.1:9090/ \
        --screenshot /tmp/ui.png \
        --edge 'frontend/web=>backend/api:FORWARDED' \
        --edge 'frontend/web=>backend/postgres:DROPPED' \
        --row GET --row 200 --ready-file /tmp/ui.ready
"""

import argparse
import sys
import time
from pathlib import Path

VERDICTS = ("FORWARDED", "DROPPED", "ERROR", "REDIRECTED")
POLL_SECONDS = 0.25

# Reads the page's test hooks: the stream state, every edge with its counts,
# and which of the expected texts some flow-table row contains.
SNAPSHOT_JS = """
(texts) => {
  const edges = [...document.querySelectorAll('#map g.edge')].map((e) => ({
    source: e.dataset.source,
    destination: e.dataset.destination,
    FORWARDED: Number(e.dataset.forwarded || 0),
    DROPPED: Number(e.dataset.dropped || 0),
    ERROR: Number(e.dataset.error || 0),
    REDIRECTED: Number(e.dataset.redirected || 0),
    ports: e.dataset.ports || '',
  }));
  const rows = [...document.querySelectorAll('tr.flow')].map((r) => r.textContent);
  const filterError = document.getElementById('filter-error');
  return {
    stream: document.body.dataset.stream || '',
    status: (document.getElementById('status-text') || {}).textContent || '',
    filterError: filterError && !filterError.hidden ? filterError.textContent : '',
    flows: Number(document.body.dataset.flows || 0),
    lost: Number(document.body.dataset.lost || 0),
    nodes: [...document.querySelectorAll('#map g.node')].map((n) => n.dataset.node),
    edges,
    rowCount: rows.length,
    rowsFound: texts.filter((t) => rows.some((r) => r.includes(t))),
  };
}
"""


def parse_edge(spec):
    """`SRC=>DST:VERDICT` as (source, destination, verdict)."""
    path, sep, verdict = spec.rpartition(":")
    source, arrow, destination = path.partition("=>")
    verdict = verdict.strip().upper()
    if not sep or not arrow or not source.strip() or not destination.strip() or verdict not in VERDICTS:
        raise argparse.ArgumentTypeError(
            f"bad --edge {spec!r}: expected SRC=>DST:VERDICT, e.g. frontend/web=>backend/api:FORWARDED "
            f"(VERDICT one of {', '.join(VERDICTS)})"
        )
    return source.strip(), destination.strip(), verdict


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Check porin's flows UI in a headless Chromium.")
    parser.add_argument("--url", required=True, help="the UI root, e.g. http://127.0.0.1:9090/")
    parser.add_argument("--screenshot", required=True, help="where to save the full-page PNG screenshot")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the expectations (default 60)")
    parser.add_argument("--edge", action="append", default=[], type=parse_edge, metavar="SRC=>DST:VERDICT",
                        help="an edge that must exist with a count > 0 for VERDICT (repeatable)")
    parser.add_argument("--row", action="append", default=[], metavar="TEXT",
                        help="a text some flow-table row must contain (repeatable)")
    parser.add_argument("--ready-file", help="touched once the page is loaded and its stream is live")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary (default /usr/bin/chromium)")
    return parser.parse_args(argv)


def unmet(expect_edges, expect_rows, snap):
    """The expectations the snapshot does not meet, in words."""
    missing = []
    by_pair = {(e["source"], e["destination"]): e for e in snap["edges"]}
    for source, destination, verdict in expect_edges:
        edge = by_pair.get((source, destination))
        if edge is None:
            missing.append(f"edge {source} => {destination}: no such edge")
        elif edge[verdict] <= 0:
            counts = ", ".join(f"{v.lower()} {edge[v]}" for v in VERDICTS)
            missing.append(f"edge {source} => {destination}: no {verdict} flows ({counts})")
    for text in expect_rows:
        if text not in snap["rowsFound"]:
            missing.append(f"row containing {text!r}: none among {snap['rowCount']} rows")
    return missing


def report(snap):
    print(f"stream: {snap['stream']} ({snap['status']}); flows: {snap['flows']}; "
          f"table rows: {snap['rowCount']}; lost events: {snap['lost']}")
    if snap["filterError"]:
        print(f"filter error shown: {snap['filterError']}")
    print(f"nodes ({len(snap['nodes'])}): {', '.join(snap['nodes']) or '-'}")
    print(f"edges ({len(snap['edges'])}):")
    for e in sorted(snap["edges"], key=lambda e: (e["source"], e["destination"])):
        counts = " ".join(f"{v.lower()}={e[v]}" for v in VERDICTS)
        print(f"  {e['source']} => {e['destination']}  {counts}  ports: {e['ports'] or '-'}")


def goto_with_retry(page, url, deadline):
    """Opens the UI, retrying while the agent is not listening yet."""
    while True:
        try:
            page.goto(url, wait_until="load", timeout=max(1000, (deadline - time.monotonic()) * 1000))
            return
        except Exception as err:  # playwright.Error: connection refused and the like
            if time.monotonic() + 0.5 >= deadline:
                raise RuntimeError(f"cannot load {url}: {str(err).splitlines()[0]}") from err
            time.sleep(0.5)


def main(argv):
    args = parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("ui_check: the Python package 'playwright' is missing: python3 -m pip install playwright", file=sys.stderr)
        return 1
    if not Path(args.chromium).exists():
        print(f"ui_check: no Chromium at {args.chromium}: apt-get install -y chromium (or pass --chromium)", file=sys.stderr)
        return 1

    js_errors = []
    problems = []
    snap = None
    started = time.monotonic()
    deadline = started + args.timeout
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("pageerror", lambda err: js_errors.append(f"uncaught: {err}"))
            page.on("console", lambda msg: msg.type == "error" and js_errors.append(
                f"console.error: {msg.text} ({msg.location.get('url', '')}:{msg.location.get('lineNumber', '')})"))
            try:
                goto_with_retry(page, args.url, deadline)
                snapshot = lambda: page.evaluate(SNAPSHOT_JS, args.row)  # noqa: E731
                ready = False
                while True:
                    snap = snapshot()
                    if not ready and snap["stream"] == "live":
                        ready = True
                        if args.ready_file:
                            Path(args.ready_file).touch()
                    if ready and not unmet(args.edge, args.row, snap):
                        break
                    if js_errors or snap["filterError"] or time.monotonic() >= deadline:
                        break
                    page.wait_for_timeout(POLL_SECONDS * 1000)  # lets page events in
                if not ready:
                    problems.append(f"the flow stream never became live (last state: {snap['stream']}: {snap['status']})")
                if snap["filterError"]:
                    problems.append(f"the page shows a filter error: {snap['filterError']}")
                # Let a pending redraw land so the screenshot shows the final state.
                page.wait_for_timeout(400)
                snap = snapshot()
            except Exception as err:
                problems.append(f"the check itself failed: {err}")
            finally:
                try:
                    page.screenshot(path=args.screenshot, full_page=True)
                    print(f"screenshot: {args.screenshot}")
                except Exception as err:
                    problems.append(f"cannot save the screenshot to {args.screenshot}: {err}")
        finally:
            browser.close()

    if snap is not None:
        report(snap)
        problems.extend(unmet(args.edge, args.row, snap))
    problems.extend(f"JavaScript error: {e}" for e in js_errors)
    if problems:
        print(f"FAIL: {len(problems)} problem(s) after {time.monotonic() - started:.1f} s:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"OK: {len(args.edge)} edge(s) and {len(args.row)} row(s) found in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
