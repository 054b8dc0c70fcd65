"""Writing files: what is at the path is respected (non-regular files
refused, symlinks written through, modes kept, the umask honoured), errors
name the user's path, and a writer killed with SIGKILL leaves nothing
behind -- for save, save_weights, ModelCheckpoint and ONNX export alike."""
import os
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import nncore
from nncore import _safe_write
from nncore.layers import Dense

from subprocess_helpers import run_outside_checkout


def small_net(seed=0):
    net = nncore.Network([Dense(4, activation="tanh"), Dense(1)], input_shape=(3,), seed=seed)
    return net.use("mse", optimizer="adam")


def export(net, path):
    pytest.importorskip("onnx")
    nncore.onnx.export(net, path)


def checkpoint(net, path):
    callback = nncore.callbacks.ModelCheckpoint(str(path), monitor="loss")
    net.fit(np.zeros((4, 3)), np.zeros((4, 1)), epochs=1, verbose=0, callbacks=[callback])


WRITERS = {"save": lambda net, path: net.save(path),
           "save_weights": lambda net, path: net.save_weights(path),
           "ModelCheckpoint": checkpoint,
           "onnx.export": export}


def others(directory, name):
    return sorted(set(os.listdir(directory)) - {name})


@pytest.mark.parametrize("writer", WRITERS)
def test_a_fifo_a_directory_and_a_device_are_refused_and_left_as_they_are(tmp_path, writer):
    write = WRITERS[writer]
    fifo = tmp_path / "pipe.nncore"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="pipe.nncore' is a FIFO"):
        write(small_net(), fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    folder = tmp_path / "folder.nncore"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="folder.nncore' is a directory"):
        write(small_net(), folder)
    assert folder.is_dir() and not list(folder.iterdir())
    with pytest.raises(FileExistsError, match="'/dev/null' is a character device"):
        write(small_net(), "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert others(tmp_path, "") == ["folder.nncore", "pipe.nncore"]


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.nncore"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(FileExistsError, match="is a socket"):
            small_net().save(path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()


@pytest.mark.parametrize("writer", WRITERS)
def test_symlinks_are_written_through_and_modes_are_kept(tmp_path, writer):
    write = WRITERS[writer]
    target = tmp_path / "real.nncore"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.nncore"
    os.symlink("real.nncore", link)
    write(small_net(), link)
    assert os.path.islink(link) and os.readlink(link) == "real.nncore"
    assert target.read_bytes() != b"old"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    dangling = tmp_path / "dangling.nncore"
    os.symlink("created.nncore", dangling)
    write(small_net(), dangling)
    assert os.path.islink(dangling) and (tmp_path / "created.nncore").is_file()
    assert others(tmp_path, "") == ["created.nncore", "dangling.nncore", "link.nncore",
                                    "real.nncore"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_the_mode_the_umask_allows(tmp_path, mask):
    old = os.umask(mask)
    try:
        for writer in ("save", "save_weights"):
            path = tmp_path / f"{writer}-{mask:o}.nncore"
            WRITERS[writer](small_net(), path)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    finally:
        os.umask(old)


def test_errors_name_the_path_the_user_gave(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        small_net().save("no/such/dir/model.nncore")
    assert "'no/such/dir/model.nncore'" in str(error.value)
    assert "'no/such/dir'" in str(error.value) and ".nncore-tmp" not in str(error.value)
    assert error.value.filename == "no/such/dir/model.nncore"
    os.mkdir("locked")
    os.chmod("locked", 0o500)
    try:
        if os.access("locked", os.W_OK):
            pytest.skip("running as root: permissions do not apply")
        with pytest.raises(PermissionError, match="'locked/m.nncore'"):
            small_net().save_weights("locked/m.nncore")
    finally:
        os.chmod("locked", 0o700)
    assert os.listdir("locked") == []


def test_a_network_that_cannot_be_loaded_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="no layers"):
        nncore.Network().save(tmp_path / "empty.nncore")
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    host = socket.gethostname()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(done.stdout)
    names = {"dead": f".nncore-tmp-{host}-{dead}-{'a' * 16}.tmp",
             "alive": f".nncore-tmp-{host}-{os.getppid()}-{'b' * 16}.tmp",
             "other_host_new": f".nncore-tmp-elsewhere-{dead}-{'c' * 16}.tmp",
             "other_host_old": f".nncore-tmp-elsewhere-{dead}-{'d' * 16}.tmp",
             "legacy_old": ".nncore-ab12cd34.tmp",
             "unrelated": ".nncore-notes.txt"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    day_ago = time.time() - 2 * _safe_write.STALE_SECONDS
    for key in ("other_host_old", "legacy_old"):
        os.utime(tmp_path / names[key], (day_ago, day_ago))
    small_net().save(tmp_path / "m.nncore")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["m.nncore", names["alive"], names["other_host_new"], names["unrelated"]])


KILLER = r"""
import os, random, signal, sys, time
import numpy as np
import nncore
from nncore.layers import Dense

directory, kills = sys.argv[1], int(sys.argv[2])
path = os.path.join(directory, "model.nncore")
nets = [nncore.Network([Dense(64, activation="tanh"), Dense(8)], input_shape=(32,), seed=s)
        .use("mse", optimizer="adam") for s in (1, 2)]
expected = [n.get_weights() for n in nets]
nets[0].save(path)
random.seed(0)
leftovers = 0
for k in range(kills):
    pid = os.fork()
    if pid == 0:
        i = 0
        while True:
            nets[i % 2].save(path)
            i += 1
    time.sleep(random.uniform(0.002, 0.03))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    names = os.listdir(directory)
    leftovers += len(names) - 1
    assert "model.nncore" in names, names
    weights = nncore.load(path).get_weights()
    assert any(all(np.array_equal(a, b) for a, b in zip(weights, e)) for e in expected)
nets[0].save(path)               # the next save removes what a kill left
print(leftovers, sorted(os.listdir(directory)))
"""


def test_fifty_kill_9_during_save_leave_every_file_loadable_and_nothing_behind(tmp_path):
    began = time.perf_counter()
    directory = tmp_path / "models"
    directory.mkdir()
    out = run_outside_checkout(f"import sys; sys.argv = ['', {str(directory)!r}, '50']\n" +
                               KILLER, tmp_path)
    leftovers, names = out.split(" ", 1)
    assert names == "['model.nncore']"
    # a kill that lands between linking and renaming (two system calls)
    # leaves a temporary until the next save removes it (checked above); how
    # often depends on the machine's load (0-3 of 50 measured; before the
    # linked temporaries, 41 of 50 stayed for good)
    assert int(leftovers) <= 10, out
    assert time.perf_counter() - began < 30
