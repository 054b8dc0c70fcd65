"""Run one file of examples/ as a script with the given command-line options
and return the names it defined (its network, data and predictions)."""
import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name, *options, run_name="__main__"):
    """Run examples/<name> with `options` as its command line; its namespace."""
    argv, path = sys.argv, sys.path[:]
    sys.argv = [name, *options]
    sys.path.insert(0, str(EXAMPLES))
    try:
        return runpy.run_path(str(EXAMPLES / name), run_name=run_name)
    finally:
        sys.argv, sys.path[:] = argv, path
