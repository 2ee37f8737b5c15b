"""`python -m bench [NAME] [--quick] [--out DIR]`: run one benchmark, or list them when no name is given."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench import harness

logger = logging.getLogger(__name__)


def _list() -> None:
    """Print every registered benchmark with its one-line summary."""
    benchmarks = harness.registry()
    width = max((len(name) for name in benchmarks), default=0)
    print("benchmarks (run one with `python -m bench NAME [--quick]`):")
    for name, bench in benchmarks.items():
        print(f"  {name:<{width}}  {bench.summary}")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the benchmark, print its figures; the exit status for the shell."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", nargs="?", help="benchmark to run; omit to list them")
    parser.add_argument("--quick", action="store_true", help="a smaller run, for a smoke test")
    parser.add_argument("--out", type=Path, default=harness.DEFAULT_OUT_DIR, help="directory of the result files")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    scale = parser.add_argument_group("scale (batch_layer)", "smaller runs for a smoke test; defaults: the full run")
    scale.add_argument("--events", type=int, help="events in the hour of the hourly rebuild (1,000,000)")
    scale.add_argument("--day-users", type=int, help="users of the simulated day of the daily rebuild (2,000)")
    scale.add_argument("--days", type=int, help="days of the simulated month the analyst queries run on (30)")
    scale.add_argument("--month-users", type=int, help="users of the simulated month (100)")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in ("events", "day_users", "days", "month_users")
               if getattr(args, name) is not None}

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "urllib3", "httpx", "httpcore", "py4j"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.log_level == "DEBUG" else logging.WARNING)

    if args.name is None:
        _list()
        return 0
    try:
        record = harness.run(args.name, out_dir=args.out, quick=args.quick, options=options)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    print(json.dumps(record["figures"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
