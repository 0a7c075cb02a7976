"""The local-file loaders read MNIST's IDX and CIFAR-10's pickles exactly, on tiny files the tests
write, and refuse missing, malformed or tampered files with messages that name them."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from datafiles import images, write_cifar10, write_idx, write_mnist
from descentlab.problems import make_problem, read_cifar10, read_idx, read_mnist
from descentlab.problems.files import MNIST_FILES


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    assert np.array_equal(read_idx(path), array)


def test_idx_refuses_what_is_not_idx(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="bad' is not an IDX file"):
        read_idx(bad)
    short = write_idx(tmp_path / "short", np.zeros((4, 4), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"short' has 25 bytes; its header .* says 28"):
        read_idx(short)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6])
    with pytest.raises(ValueError, match="not a readable gzip file"):
        read_idx(broken)


@pytest.mark.parametrize("layout", ["flat", "flat-gz", "torchvision"])
def test_mnist_reads_every_layout(tmp_path, layout):
    where = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    write_mnist(where, n_train=30, n_test=10, gz=layout == "flat-gz")
    splits = read_mnist(tmp_path)
    x, y = images(30, (28, 28), 0)
    assert splits.train[0].dtype == torch.uint8 and torch.equal(splits.train[0], torch.from_numpy(x))
    assert torch.equal(splits.train[1], torch.from_numpy(y.astype(np.int64)))
    assert splits.test[0].shape == (10, 28, 28)


def test_mnist_errors_name_the_directory_and_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data directory .*nowhere' does not exist"):
        read_mnist(tmp_path / "nowhere")
    expected = "expected train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    with pytest.raises(FileNotFoundError, match=f"MNIST: no data in '{tmp_path}': {expected}"):
        read_mnist(tmp_path)
    write_mnist(tmp_path, n_train=10, n_test=10)
    os.remove(tmp_path / MNIST_FILES[3])
    with pytest.raises(FileNotFoundError, match=f"'{tmp_path}' lacks t10k-labels-idx1-ubyte"):
        read_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[3], np.zeros(9, np.uint8))
    with pytest.raises(ValueError, match="expected 10 labels, one per image"):
        read_mnist(tmp_path)


def test_fashion_mnist_uses_its_own_torchvision_folder(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw", n_train=10, n_test=10)
    assert read_mnist(tmp_path, "fashion-mnist").train[0].shape == (10, 28, 28)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST: no data"):
        read_mnist(tmp_path / "FashionMNIST", "fashion-mnist")  # the files are one level further down


def test_cifar10_reads_the_python_batches(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=12)
    splits = read_cifar10(tmp_path)
    assert splits.train[0].shape == (60, 3, 32, 32) and splits.train[0].dtype == torch.uint8
    first, labels = images(12, (3, 32, 32), 0)
    assert torch.equal(splits.train[0][:12], torch.from_numpy(first))
    assert torch.equal(splits.train[1][:12], torch.from_numpy(labels.astype(np.int64)))
    assert splits.test[0].shape == (12, 3, 32, 32)
    assert read_cifar10(tmp_path / "cifar-10-batches-py").train[0].shape == (60, 3, 32, 32)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar10_pickles_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path, per_batch=4)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2))
    with pytest.raises(
        ValueError, match=r"test_batch' is not a CIFAR-10 batch .*refusing to load posix\.system"
    ):
        read_cifar10(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_checks_the_batches(tmp_path):
    write_cifar10(tmp_path, per_batch=4)
    (tmp_path / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((4, 10), np.uint8), b"labels": [0] * 4})
    )
    with pytest.raises(ValueError, match="data_batch_3': expected uint8 data of shape \\(N, 3072\\)"):
        read_cifar10(tmp_path)
    image = np.zeros((4, 3072), np.uint8)
    for labels, found in ((5, r"\(\)"), ([[1], [2], [3], [4]], r"\(4, 1\)")):
        (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": image, b"labels": labels}))
        with pytest.raises(
            ValueError,
            match=rf"data_batch_3': the labels must be .*one per image; found an array of shape {found}",
        ):
            read_cifar10(tmp_path)
    # an empty batch is an empty batch, whichever pickle protocol wrote its bytes
    for protocol in (2, 4):
        (tmp_path / "data_batch_3").write_bytes(
            pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=protocol)
        )
        with pytest.raises(ValueError, match="data_batch_3': holds no images"):
            read_cifar10(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        read_cifar10(tmp_path)


def test_a_data_directory_is_a_path_and_a_number_names_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_mnist(tmp_path / "2024", n_train=10, n_test=10)
    assert make_problem("mnist-mlp", data_dir=2024).splits().train[0].shape == (10, 28, 28)
    for wrong in ([str(tmp_path)], 1.5, True):
        with pytest.raises(
            ValueError, match=r"mnist-mlp: data_dir must be a folder's path; received data_dir="
        ):
            make_problem("mnist-mlp", data_dir=wrong)


def test_local_problems_need_a_data_directory():
    with pytest.raises(
        ValueError, match="mnist-mlp reads MNIST from a local directory and downloads nothing"
    ):
        make_problem("mnist-mlp").splits()


def test_limit_keeps_the_first_training_images(tmp_path):
    write_mnist(tmp_path, n_train=30, n_test=10)
    problem = make_problem("mnist-mlp", data_dir=str(tmp_path), limit=7)
    assert problem.splits().train[0].shape == (7, 28, 28) and problem.splits().test[0].shape == (10, 28, 28)
    assert problem.model(0)(problem.splits().train[0]).shape == (7, 10)


def test_mnist_refuses_images_of_another_size_and_empty_files(tmp_path):
    write_mnist(tmp_path, n_train=10, n_test=10)
    write_idx(tmp_path / MNIST_FILES[0], np.zeros((10, 10, 10), np.uint8))
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte': expected uint8 images of 28 x 28 pixels"
    ):
        read_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[0], np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / MNIST_FILES[1], np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte': holds no images"):
        read_mnist(tmp_path)


def test_a_damaged_gzip_and_a_huge_header_are_named(tmp_path):
    path = write_idx(
        tmp_path / "a-idx3-ubyte", np.arange(4000, dtype=np.uint8).reshape(40, 10, 10) % 7, gz=True
    )
    data = bytearray(path.read_bytes())
    data[50:60] = bytes(10)  # a corrupt deflate block (zlib.error, not OSError)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable gzip file"):
        read_idx(path)
    huge = tmp_path / "huge"
    huge.write_bytes(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3)
    with pytest.raises(
        ValueError, match=r"its header \(shape \(4294967295, 4294967295, 4294967295\), uint8\) says \d{25,}"
    ):
        read_idx(huge)


def test_labels_must_be_whole_numbers_from_0_to_9(tmp_path):
    write_mnist(tmp_path, n_train=10, n_test=10)
    header = bytes([0, 0, 0x0E, 1]) + (10).to_bytes(4, "big")  # float64 labels
    for labels, shown in ((np.full(10, np.nan), "nan"), (np.full(10, 1.25), "1.25")):
        (tmp_path / MNIST_FILES[1]).write_bytes(header + labels.astype(">f8").tobytes())
        with pytest.raises(
            ValueError,
            match=f"train-labels-idx1-ubyte': labels must be whole numbers 0 to 9; found \\[{shown}",
        ):
            read_mnist(tmp_path)
    write_cifar10(tmp_path / "cifar", per_batch=4)
    for labels in (["a"] * 4, [[0, 1]] * 3 + [[0]]):
        (tmp_path / "cifar" / "test_batch").write_bytes(
            pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": labels})
        )
        with pytest.raises(ValueError, match="test_batch': the labels must be whole numbers 0 to 9"):
            read_cifar10(tmp_path / "cifar")
