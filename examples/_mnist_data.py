"""Where the MNIST examples find their data: `--data DIR`, else the
NNCORE_MNIST_DIR environment variable, else shared/data/mnist beside the
checkout."""
import argparse
import os
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR",
                        help="directory holding the MNIST IDX files (default: "
                             f"$NNCORE_MNIST_DIR, else {DEFAULT_DIR})")


def mnist_directory(parser: argparse.ArgumentParser, given) -> Path:
    """The directory to read, or exit through the parser with a message
    naming both ways to give it."""
    if given:
        directory, source = Path(given), "--data"
    elif os.environ.get("NNCORE_MNIST_DIR"):
        directory, source = Path(os.environ["NNCORE_MNIST_DIR"]), "NNCORE_MNIST_DIR"
    else:
        directory, source = DEFAULT_DIR, "the default directory"
    if not any(directory.glob("t10k-images-idx3-ubyte*")):
        parser.error(f"no MNIST IDX files in {directory} (from {source}); pass --data DIR "
                     f"or set NNCORE_MNIST_DIR to a directory holding them")
    return directory
