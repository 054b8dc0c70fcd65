"""Running Python code in a fresh interpreter outside the checkout."""
import os
import subprocess
import sys


def run_outside_checkout(code: str, cwd) -> str:
    """The standard output of `python -c code` run in `cwd`.  The checkout's
    nncore/ has no compiled modules unless built in place, so the code runs
    elsewhere; PYTHONPATH is kept (made absolute) so that an in-place build is
    found when that is what is tested."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in
                                            env["PYTHONPATH"].split(os.pathsep) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=cwd, env=env).stdout.strip()
