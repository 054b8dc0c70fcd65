"""The MNIST downloader, tested only against a local HTTP server on 127.0.0.1."""
import http.server
import shutil
import socket
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from nncore import datasets, utils
from conftest import MNIST_DIR

# served name -> local file (the 5k training subset stands in for the 60k set)
SERVED = {"train-images-idx3-ubyte.gz": "train5k-images-idx3-ubyte.gz",
          "train-labels-idx1-ubyte.gz": "train5k-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz": "t10k-images-idx3-ubyte.gz",
          "t10k-labels-idx1-ubyte.gz": "t10k-labels-idx1-ubyte.gz"}


class Handler(http.server.SimpleHTTPRequestHandler):
    truncate = set()      # names sent with a full Content-Length but half the bytes

    def do_GET(self):
        name = self.path.lstrip("/")
        if name in self.truncate:
            data = Path(self.directory, name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base_url, served_dir, handler class) of a local server; the checksum
    table is the published SHA256SUMS of the served files."""
    if not (MNIST_DIR / "SHA256SUMS").is_file():
        pytest.skip(f"MNIST files with SHA256SUMS not found in {MNIST_DIR}")
    sums = dict(line.split()[::-1] for line in (MNIST_DIR / "SHA256SUMS").read_text().splitlines()
                if line.strip())
    served = tmp_path / "served"
    served.mkdir()
    for name, source in SERVED.items():
        shutil.copy(MNIST_DIR / source, served / name)
    monkeypatch.setattr(datasets, "MNIST_SHA256", {n: sums[s] for n, s in SERVED.items()})
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path / "cache"))
    handler = type("H", (Handler,), {"truncate": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, handler
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_verifies_and_loads(server, tmp_path):
    url, _, _ = server
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(url=url)
    assert x_train.shape == (5000, 28, 28) and y_train.shape == (5000,)
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(SERVED)   # no temp files left
    # a second call uses the verified cache even when the server is gone
    again = datasets.load_mnist(url="http://127.0.0.1:9/")
    np.testing.assert_array_equal(again[1][1], y_test)


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    url, served, _ = server
    data = bytearray((served / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 0xFF
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    with pytest.raises(datasets.DownloadError, match="SHA-256 mismatch"):
        datasets.load_mnist(url=url)
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(cache.glob("*.part"))


def test_damaged_cached_file_is_downloaded_again(server, tmp_path):
    url, _, _ = server
    datasets.fetch_mnist(url=url)
    cached = tmp_path / "cache" / "mnist" / "train-labels-idx1-ubyte.gz"
    cached.write_bytes(b"garbage")
    datasets.fetch_mnist(url=url)
    assert datasets.sha256(cached) == datasets.MNIST_SHA256[cached.name]


def test_partial_download_is_rejected(server, tmp_path):
    url, _, handler = server
    handler.truncate.add("t10k-images-idx3-ubyte.gz")
    with pytest.raises(datasets.DownloadError, match=r"t10k-images.*(incomplete|IncompleteRead)"):
        datasets.load_mnist(url=url)
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(cache.glob("*.part"))


def test_offline_error_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path))
    with socket.socket() as s:          # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(datasets.DownloadError) as info:
        datasets.load_mnist(url=f"http://127.0.0.1:{port}/")
    message = str(info.value)
    assert str(tmp_path / "mnist") in message and "train-images-idx3-ubyte.gz" in message
    assert "NNCORE_DATA" in message


def test_data_home_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path / "d"))
    assert datasets.data_home() == tmp_path / "d"
    monkeypatch.delenv("NNCORE_DATA")
    assert datasets.data_home().name == "nncore"


def test_train_test_split_and_split_tail():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    x_tr, x_te, y_tr, y_te = utils.train_test_split(x, y, test_size=0.3, seed=0)
    assert len(x_tr) == 7 and len(x_te) == 3
    np.testing.assert_array_equal(x_tr[:, 0] // 2, y_tr)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), y)
    x_tr, x_te, y_tr, y_te = utils.train_test_split(x, y, test_size=2, shuffle=False)
    np.testing.assert_array_equal(y_te, [8, 9])
    tail_x, tail_y = utils.split_tail(x, y, 3)
    np.testing.assert_array_equal(tail_y, [7, 8, 9])
    with pytest.raises(ValueError):
        utils.train_test_split(x, y[:5])
