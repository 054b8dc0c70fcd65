"""
nncore against PyTorch and onnxruntime
======================================

The headline table of the :doc:`benchmarks page <../benchmarks>`, drawn: for
each workload whose reference is PyTorch or onnxruntime, how many times
faster nncore ran (above 1: nncore is faster).  The figures are read from
``docs/benchmarks.md`` when the page is built, so the plot always shows what
the table says; how they were measured is written above the table.
"""
import re

import matplotlib.pyplot as plt

from _run_example import EXAMPLES

PAGE = EXAMPLES.parent / "docs" / "benchmarks.md"
RATIO = re.compile(r"^([\d.]+)x(?: / ([\d.]+)x)? (onnxruntime|PyTorch)\b")

rows = []
for line in PAGE.read_text(encoding="utf-8").splitlines():
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if len(cells) != 3 or cells[0] in ("workload", "---"):
        continue
    match = RATIO.match(cells[2])
    if match is None:
        continue
    first, second, reference = match.groups()
    workload = re.sub(r"\s*\(`[^`]*`\)", "", cells[0]).replace("`", "")
    if second is None:
        rows.append((workload, float(first), reference))
    else:      # "a / b" workloads: one bar for each
        names = re.match(r"(.*?)([\w-]+(?: [\w-]+)?) / ([\w-]+(?: [\w-]+)?)(.*)$", workload)
        if names:
            before, one, other, after = names.groups()
            if other[0].isdigit() and not one[0].isdigit():     # "batch 32 / 128"
                other = one.split()[0] + " " + other
            labels = [before + one + after, before + other + after]
        else:
            labels = [workload + " (first)", workload + " (second)"]
        rows += [(labels[0], float(first), reference), (labels[1], float(second), reference)]
print(f"{len(rows)} ratios read from {PAGE.name}")

colors = {"onnxruntime": "tab:blue", "PyTorch": "tab:orange"}
figure, axes = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
positions = range(len(rows))[::-1]
axes.barh(list(positions), [ratio for _, ratio, _ in rows],
          color=[colors[reference] for _, _, reference in rows])
axes.set_yticks(list(positions), [workload for workload, _, _ in rows], fontsize=7)
axes.axvline(1.0, color="black", linewidth=0.8)
axes.set_xscale("log")
axes.set_xlabel("nncore's speed / the reference's (log scale; > 1: nncore faster)")
axes.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()],
            labels=list(colors), loc="lower right")
figure.tight_layout()
plt.show()
