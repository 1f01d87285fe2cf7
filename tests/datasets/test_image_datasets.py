"""Tests of torchebm_nb.datasets.images (issue 15, data): scikit-learn's digits (split by seed, exact scaling, binarised,
the ImportError without scikit-learn), and MNIST / Fashion-MNIST / CIFAR-10 read from small files written in the real
formats (IDX raw and gzipped, pickled batches), downloaded offline from file:// mirrors with MD5 checks, and refused
with a clear error when missing, corrupt, truncated or of the wrong size. Bad arguments are refused before any file is
read (the readers are replaced by spies that fail the test if called)."""
import gzip
import hashlib
import io
import math
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import torchebm_nb.datasets as datasets
import torchebm_nb.datasets.images as images_module
from torchebm_nb.datasets import CIFAR10Dataset, DigitsDataset, FashionMNISTDataset, MNISTDataset

IMAGE_CLASSES = [DigitsDataset, MNISTDataset, FashionMNISTDataset, CIFAR10Dataset]
IDX_CLASSES = [MNISTDataset, FashionMNISTDataset]


# --- files in the real formats ----------------------------------------------------------------------------------

def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape) + array.tobytes()


def write(path, blob):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == '.gz':
        with gzip.open(path, 'wb') as file: file.write(blob)
    else:
        path.write_bytes(blob)
    return path


def fake_images(n=10, size=(28, 28), channels=None, seed=0):
    shape = (n, *size) if channels is None else (n, channels, *size)
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def make_idx_root(root, cls, train=False, n=10, gz_images=True, gz_labels=False, seed=0):
    "Write the split's two IDX files for `cls` under root; return the images and labels written."
    split = 'train' if train else 't10k'
    pixels, labels = fake_images(n, seed=seed), torch.arange(n) % 10
    folder = root / cls.folder
    write(folder / f"{split}-images-idx3-ubyte{'.gz' if gz_images else ''}", idx_bytes(pixels))
    write(folder / f"{split}-labels-idx1-ubyte{'.gz' if gz_labels else ''}", idx_bytes(labels))
    return pixels, labels


def cifar_batch_bytes(pixels, labels):
    batch = {'batch_label': 'fake', 'labels': [int(v) for v in labels],
             'data': np.asarray(pixels, dtype=np.uint8).reshape(len(labels), -1), 'filenames': ['f.png'] * len(labels)}
    return pickle.dumps(batch, protocol=2)


def make_cifar_folder(folder, n=10, seed=1):
    "Write all six batches (n images each) into folder; return the pixels and labels of each."
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(CIFAR10Dataset.train_files + CIFAR10Dataset.test_files):
        pixels, labels = fake_images(n, (32, 32), channels=3, seed=seed + k), (torch.arange(n) + k) % 10
        (folder / name).write_bytes(cifar_batch_bytes(pixels, labels))
        written[name] = (pixels, labels)
    return written


def make_cifar_archive(path, source_folder, extra_members=()):
    with tarfile.open(path, 'w:gz') as tar:
        for name in CIFAR10Dataset.train_files + CIFAR10Dataset.test_files:
            tar.add(source_folder / name, arcname=f'cifar-10-batches-py/{name}')
        for arcname, blob in extra_members:
            info = tarfile.TarInfo(arcname); info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return hashlib.md5(path.read_bytes()).hexdigest()


def scaled(pixels, max_value=255, low=-1.0, high=1.0, dtype=torch.float32):
    "The documented formula, low + (high - low)·p/p_max in float64, then cast."
    return (low + (high - low) * (pixels.double() / max_value)).to(dtype)


# --- exports ------------------------------------------------------------------------------------------------------

def test_exports():
    for name in ['DigitsDataset', 'MNISTDataset', 'FashionMNISTDataset', 'CIFAR10Dataset']:
        assert name in datasets.__all__ and getattr(datasets, name) is getattr(images_module, name)
    assert all(issubclass(c, Dataset) and issubclass(c, images_module.BaseImageDataset) for c in IMAGE_CLASSES)
    assert all(len(c.classes) == 10 for c in IMAGE_CLASSES)


# --- bad arguments: refused before any file is read ---------------------------------------------------------------

@pytest.fixture
def no_reading(monkeypatch):
    "Replace every reader and the downloader with spies that fail the test if called; yield the call log."
    calls = []
    def spy(name):
        def called(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f'{name} was called before the arguments were checked')
        return called
    for name in ['_load_sklearn_digits', '_read_bytes', '_read_cifar_batch', '_fetch', '_unpack_folder']:
        monkeypatch.setattr(images_module, name, spy(name))
    return calls


class Transform:
    def __call__(self, x): return x


CASES = {  # name: (call taking the root, exception type, argument named, expected words)
    'digits train="yes"': (lambda r: DigitsDataset(train='yes'), TypeError, 'train', 'must be a bool'),
    'digits train=1': (lambda r: DigitsDataset(train=1), TypeError, 'train', 'must be a bool'),
    'digits binarize=None': (lambda r: DigitsDataset(binarize=None), TypeError, 'binarize', 'must be a bool'),
    'digits test_fraction=0': (lambda r: DigitsDataset(test_fraction=0), ValueError, 'test_fraction', 'in (0, 1)'),
    'digits test_fraction=1': (lambda r: DigitsDataset(test_fraction=1.0), ValueError, 'test_fraction', 'in (0, 1)'),
    'digits test_fraction=-0.1': (lambda r: DigitsDataset(test_fraction=-0.1), ValueError, 'test_fraction', 'in (0, 1)'),
    'digits test_fraction=nan': (lambda r: DigitsDataset(test_fraction=math.nan), ValueError, 'test_fraction', 'finite'),
    'digits test_fraction="0.2"': (lambda r: DigitsDataset(test_fraction='0.2'), TypeError, 'test_fraction', 'real number'),
    'digits seed=-1': (lambda r: DigitsDataset(seed=-1), ValueError, 'seed', '≥ 0'),
    'digits seed=2**64': (lambda r: DigitsDataset(seed=2**64), ValueError, 'seed', '< 2**64'),
    'digits seed=1.5': (lambda r: DigitsDataset(seed=1.5), TypeError, 'seed', 'must be an int'),
    'digits seed=True': (lambda r: DigitsDataset(seed=True), TypeError, 'seed', 'must be an int'),
    'digits value_range=(1, 0)': (lambda r: DigitsDataset(value_range=(1, 0)), ValueError, 'value_range', 'low < high'),
    'digits value_range=(0, 0)': (lambda r: DigitsDataset(value_range=(0, 0)), ValueError, 'value_range', 'low < high'),
    'digits value_range=1.0': (lambda r: DigitsDataset(value_range=1.0), TypeError, 'value_range', 'must be a pair'),
    'digits value_range triple': (lambda r: DigitsDataset(value_range=(0, 1, 2)), TypeError, 'value_range', 'must be a pair'),
    'digits value_range (0, inf)': (lambda r: DigitsDataset(value_range=(0, math.inf)), ValueError, 'value_range', 'finite'),
    'digits value_range ("0", 1)': (lambda r: DigitsDataset(value_range=('0', 1)), TypeError, 'value_range', 'real number'),
    'digits dtype=int64': (lambda r: DigitsDataset(dtype=torch.int64), ValueError, 'dtype', 'floating dtype'),
    'digits dtype="float32"': (lambda r: DigitsDataset(dtype='float32'), TypeError, 'dtype', 'torch.dtype'),
    'digits transform=3': (lambda r: DigitsDataset(transform=3), TypeError, 'transform', 'a callable or None'),
    'digits transform=class': (lambda r: DigitsDataset(transform=Transform), TypeError, 'transform', 'instantiate it'),
    'digits target_transform="int"': (lambda r: DigitsDataset(target_transform='int'), TypeError, 'target_transform',
                                      'a callable or None'),
    'mnist root=None': (lambda r: MNISTDataset(None), TypeError, 'root', 'must be a path'),
    'mnist root=3': (lambda r: MNISTDataset(3), TypeError, 'root', 'must be a path'),
    'mnist root=""': (lambda r: MNISTDataset(''), ValueError, 'root', 'non-empty'),
    'mnist train=1': (lambda r: MNISTDataset(r, train=1), TypeError, 'train', 'must be a bool'),
    'mnist download="no"': (lambda r: MNISTDataset(r, download='no'), TypeError, 'download', 'must be a bool'),
    'mnist download=1 (would fetch)': (lambda r: MNISTDataset(r, download=1), TypeError, 'download', 'must be a bool'),
    'mnist value_range=(0, 0)': (lambda r: MNISTDataset(r, download=True, value_range=(0, 0)), ValueError,
                                 'value_range', 'low < high'),
    'mnist dtype=int32': (lambda r: MNISTDataset(r, download=True, dtype=torch.int32), ValueError, 'dtype', 'floating'),
    'mnist transform=5': (lambda r: MNISTDataset(r, transform=5), TypeError, 'transform', 'a callable or None'),
    'fashion download=None': (lambda r: FashionMNISTDataset(r, download=None), TypeError, 'download', 'must be a bool'),
    'fashion target_transform=[]': (lambda r: FashionMNISTDataset(r, target_transform=[]), TypeError,
                                    'target_transform', 'a callable or None'),
    'cifar root=["a"]': (lambda r: CIFAR10Dataset(['a']), TypeError, 'root', 'must be a path'),
    'cifar train=None': (lambda r: CIFAR10Dataset(r, train=None), TypeError, 'train', 'must be a bool'),
    'cifar download=1': (lambda r: CIFAR10Dataset(r, download=1), TypeError, 'download', 'must be a bool'),
    'cifar value_range=(2, 1)': (lambda r: CIFAR10Dataset(r, download=True, value_range=(2, 1)), ValueError,
                                 'value_range', 'low < high'),
    'cifar dtype=bool': (lambda r: CIFAR10Dataset(r, download=True, dtype=torch.bool), ValueError, 'dtype', 'floating'),
    'cifar transform="flip"': (lambda r: CIFAR10Dataset(r, transform='flip'), TypeError, 'transform', 'a callable'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_arguments_are_refused_before_any_file_is_read(case, tmp_path, no_reading):
    call, kind, name, words = CASES[case]
    root = tmp_path / 'data'   # absent: had anything been looked for, a FileNotFoundError would say so
    with pytest.raises(kind) as caught:
        call(root)
    message = str(caught.value)
    assert type(caught.value) is kind and message.startswith(name) and words in message, message
    assert no_reading == [] and not root.exists()


def test_sensible_arguments_still_work(tmp_path):
    digits = DigitsDataset(train=False, test_fraction=0.5, seed=2**64 - 1, binarize=True, value_range=[0, 1],
                           transform=Transform(), target_transform=lambda y: str(y), dtype=torch.float64)
    assert digits.value_range == (0.0, 1.0) and digits.data.dtype == torch.float64 and isinstance(digits[0][1], str)
    make_idx_root(tmp_path, MNISTDataset)
    assert len(MNISTDataset(tmp_path, train=False, value_range=(-0.5, 0.5), dtype=torch.float16)) == 10
    assert len(MNISTDataset(str(tmp_path), False, None, None, False)) == 10   # torchvision's positional order


# --- DigitsDataset ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def sklearn_digits():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    return torch.from_numpy(bunch.images), torch.from_numpy(bunch.target)


def test_digits_shapes_and_labels(sklearn_digits):
    raw, labels = sklearn_digits
    train, test = DigitsDataset(), DigitsDataset(train=False)
    assert train.data.shape == (1797 - 359, 1, 8, 8) and test.data.shape == (359, 1, 8, 8)
    assert train.data.dtype == torch.float32 and train.targets.dtype == torch.int64
    assert train.data.is_contiguous() and train.image_shape == (1, 8, 8)
    assert torch.equal(train.targets, labels[train.indices]) and torch.equal(test.targets, labels[test.indices])
    image, label = train[5]
    assert image.shape == (1, 8, 8) and isinstance(label, int) and label == int(labels[train.indices[5]])
    assert train.classes == tuple('0123456789')


@pytest.mark.parametrize('value_range', [(-1.0, 1.0), (0.0, 1.0), (-0.5, 2.0)])
def test_digits_scaling_is_the_documented_formula(sklearn_digits, value_range):
    raw, _ = sklearn_digits
    low, high = value_range
    digits = DigitsDataset(value_range=value_range, dtype=torch.float64)
    expected = low + (high - low) * raw[digits.indices].unsqueeze(1) / 16
    assert torch.equal(digits.data, expected)
    pixels = raw[digits.indices]
    assert digits.data.min().item() == low + (high - low) * pixels.min().item() / 16
    assert digits.data.max().item() == low + (high - low) * pixels.max().item() / 16


def test_digits_default_range_is_exactly_minus_one_to_one(sklearn_digits):
    raw, _ = sklearn_digits
    digits = DigitsDataset()
    pixels = raw[digits.indices]
    assert digits.data.min().item() == pixels.min().item() / 16 * 2 - 1 == -1.0
    assert digits.data.max().item() == pixels.max().item() / 16 * 2 - 1 == 1.0
    assert torch.equal(digits.data, (raw[digits.indices].unsqueeze(1) / 8 - 1).float())   # steps of 1/8: exact


def test_digits_binarised(sklearn_digits):
    raw, _ = sklearn_digits
    binary = DigitsDataset(binarize=True)
    assert torch.equal(binary.data, torch.where(raw[binary.indices].unsqueeze(1) >= 8, 1.0, -1.0))
    unit = DigitsDataset(binarize=True, value_range=(0, 1))
    assert set(unit.data.unique().tolist()) == {0.0, 1.0}
    assert 0.2 < unit.data.mean().item() < 0.5   # a digit covers a fair part of its square


@pytest.mark.parametrize('test_fraction', [0.1, 0.2, 0.5, 0.9, 1e-6, 1 - 1e-6])
def test_digits_split_is_a_partition(test_fraction):
    train, test = DigitsDataset(test_fraction=test_fraction), DigitsDataset(train=False, test_fraction=test_fraction)
    assert len(test) == min(max(round(test_fraction * 1797), 1), 1796) and len(train) + len(test) == 1797
    assert torch.equal(torch.cat([train.indices, test.indices]).sort().values, torch.arange(1797))
    assert torch.equal(train.indices, train.indices.sort().values)


def test_digits_split_is_deterministic_by_seed():
    state = torch.get_rng_state()
    first, again = DigitsDataset(seed=7), DigitsDataset(seed=7)
    assert torch.equal(first.indices, again.indices) and torch.equal(first.data, again.data)
    assert not torch.equal(first.indices, DigitsDataset(seed=8).indices)
    assert torch.equal(DigitsDataset(seed=7, train=False).indices, DigitsDataset(seed=7, train=False).indices)
    assert torch.equal(torch.get_rng_state(), state)   # the global generator never moved


def test_digits_dataloader_epoch():
    digits = DigitsDataset(train=False)
    seen_images, seen_labels = [], []
    for images, labels in DataLoader(digits, batch_size=64, shuffle=False):
        assert images.shape[1:] == (1, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
        seen_images.append(images); seen_labels.append(labels)
    assert torch.equal(torch.cat(seen_images), digits.data) and torch.equal(torch.cat(seen_labels), digits.targets)


@pytest.mark.parametrize('blocked', [['sklearn', 'sklearn.datasets'], ['sklearn.datasets']])
def test_digits_without_scikit_learn(monkeypatch, blocked):
    for name in blocked: monkeypatch.setitem(sys.modules, name, None)   # `import` of a None entry raises ImportError
    with pytest.raises(ImportError) as caught:
        DigitsDataset()
    message = str(caught.value)
    assert 'scikit-learn' in message and 'pip install scikit-learn' in message and 'tools/setup.sh' in message


def test_digits_argument_errors_come_before_the_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'sklearn.datasets', None)
    with pytest.raises(ValueError, match='test_fraction'):
        DigitsDataset(test_fraction=2)


def test_transforms_and_indexing():
    digits = DigitsDataset(train=False, transform=lambda x: x.flatten(), target_transform=lambda y: y + 100)
    image, label = digits[-1]
    assert image.shape == (64,) and label == int(digits.targets[-1]) + 100
    assert digits[torch.tensor(3)][1] == int(digits.targets[3]) + 100
    with pytest.raises(IndexError, match='index 359 is out of range for DigitsDataset of 359 images'):
        digits[359]
    with pytest.raises(IndexError, match='out of range'):
        digits[-360]
    with pytest.raises(TypeError, match='DigitsDataset indices must be integers; got slice'):
        digits[0:2]
    assert repr(digits) == ('DigitsDataset(n_images=359, image_shape=(1, 8, 8), value_range=(-1.0, 1.0), '
                            'dtype=torch.float32)')


# --- MNIST and Fashion-MNIST: reading ---------------------------------------------------------------------------

@pytest.mark.parametrize('gz_images, gz_labels', [(True, True), (False, False), (True, False), (False, True)])
@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('cls', IDX_CLASSES, ids=lambda c: c.__name__)
def test_idx_files_raw_or_gzipped(tmp_path, cls, train, gz_images, gz_labels):
    pixels, labels = make_idx_root(tmp_path, cls, train=train, gz_images=gz_images, gz_labels=gz_labels)
    dataset = cls(tmp_path, train=train)
    assert dataset.data.shape == (10, 1, 28, 28) and torch.equal(dataset.data, scaled(pixels.unsqueeze(1)))
    assert torch.equal(dataset.targets, labels) and dataset.targets.dtype == torch.int64
    assert dataset.root == tmp_path and len(dataset) == 10 and dataset.image_shape == (1, 28, 28)


@pytest.mark.parametrize('cls', IDX_CLASSES, ids=lambda c: c.__name__)
def test_idx_value_range_and_loader(tmp_path, cls):
    pixels, labels = make_idx_root(tmp_path, cls)
    unit = cls(tmp_path, train=False, value_range=(0, 1))
    assert torch.equal(unit.data, scaled(pixels.unsqueeze(1), low=0.0))
    default = cls(tmp_path, train=False)
    assert default.data.min().item() >= -1 and default.data.max().item() <= 1
    batches = list(DataLoader(default, batch_size=4))
    assert [tuple(images.shape) for images, _ in batches] == [(4, 1, 28, 28), (4, 1, 28, 28), (2, 1, 28, 28)]
    assert torch.equal(torch.cat([labels for _, labels in batches]), labels)
    assert cls(tmp_path, train=False).classes[9] == ('9' if cls is MNISTDataset else 'Ankle boot')


def test_extreme_pixels_map_to_the_ends(tmp_path):
    pixels = torch.zeros(2, 28, 28, dtype=torch.uint8); pixels[1] = 255
    write(tmp_path / 'MNIST/raw/t10k-images-idx3-ubyte', idx_bytes(pixels))
    write(tmp_path / 'MNIST/raw/t10k-labels-idx1-ubyte', idx_bytes([0, 1]))
    assert MNISTDataset(tmp_path, train=False).data.unique().tolist() == [-1.0, 1.0]
    assert MNISTDataset(tmp_path, train=False, value_range=(0, 1)).data.unique().tolist() == [0.0, 1.0]


# --- missing files -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('cls', IDX_CLASSES, ids=lambda c: c.__name__)
def test_missing_idx_files_are_named(tmp_path, cls, train):
    split = 'train' if train else 't10k'
    with pytest.raises(FileNotFoundError) as caught:
        cls(tmp_path, train=train)
    message = str(caught.value)
    for name in (f'{split}-images-idx3-ubyte', f'{split}-labels-idx1-ubyte'):
        assert name in message and f'{name}.gz' in message, message
    assert str(tmp_path / cls.folder) in message and cls.mirrors[0] in message and 'download=True' in message


def test_one_missing_idx_file_is_named_alone(tmp_path):
    write(tmp_path / 'MNIST/raw/t10k-images-idx3-ubyte.gz', idx_bytes(fake_images(2)))
    with pytest.raises(FileNotFoundError, match=r'missing: t10k-labels-idx1-ubyte\. '):
        MNISTDataset(tmp_path, train=False)


@pytest.mark.parametrize('train', [True, False])
def test_missing_cifar_batches_are_named(tmp_path, train):
    (tmp_path / 'cifar-10-batches-py').mkdir()
    (tmp_path / 'cifar-10-batches-py' / 'data_batch_1').write_bytes(cifar_batch_bytes(fake_images(1, (32, 32), 3), [0]))
    with pytest.raises(FileNotFoundError) as caught:
        CIFAR10Dataset(tmp_path, train=train)
    message = str(caught.value)
    expected_missing = ['data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5'] if train else ['test_batch']
    assert f"missing: {', '.join(expected_missing)}." in message, message
    assert 'cifar-10-python.tar.gz' in message and 'https://www.cs.toronto.edu/~kriz/' in message


# --- corrupt, truncated and wrong-sized files -----------------------------------------------------------------------

def _corrupt_idx_cases():
    images, labels = idx_bytes(fake_images(3)), idx_bytes([1, 2, 3])
    return {  # name: (bytes of the images file, bytes of the labels file, the file named, expected words)
        'images with the labels magic': (labels, labels, 'images', 'magic number 0x00000801, expected 0x00000803'),
        'labels with the images magic': (images, images, 'labels', 'magic number 0x00000803, expected 0x00000801'),
        'signed-byte type code': (b'\x00\x00\x09\x03' + images[4:], labels, 'images', 'magic number 0x00000903'),
        'truncated images': (images[:-1], labels, 'images', 'truncated or corrupt'),
        'images with trailing bytes': (images + b'\x00', labels, 'images', 'the file holds 2353'),
        'truncated header': (images[:9], labels, 'images', 'magic number'),
        'empty labels file': (images, b'', 'labels', 'magic number 0x(missing)'),
        'wrong image size': (idx_bytes(np.zeros((3, 27, 28))), labels, 'images',
                             'images of 27×28 pixels; MNISTDataset expects 28×28'),
        'more labels than images': (images, idx_bytes([1, 2, 3, 4]), 'images', 'holds 3 images and'),
        'no images': (idx_bytes(np.zeros((0, 28, 28))), idx_bytes(np.zeros(0)), 'images', 'at least one'),
        'label 10': (images, idx_bytes([1, 10, 3]), 'labels', 'label 10 is not a class (0 to 9)'),
    }


CORRUPT_IDX = _corrupt_idx_cases()


@pytest.mark.parametrize('case', list(CORRUPT_IDX))
def test_corrupt_idx_files_are_value_errors_naming_the_file(tmp_path, case):
    images_blob, labels_blob, named, words = CORRUPT_IDX[case]
    folder = tmp_path / 'MNIST/raw'; folder.mkdir(parents=True)
    paths = {'images': folder / 't10k-images-idx3-ubyte', 'labels': folder / 't10k-labels-idx1-ubyte'}
    paths['images'].write_bytes(images_blob); paths['labels'].write_bytes(labels_blob)
    with pytest.raises(ValueError) as caught:
        MNISTDataset(tmp_path, train=False)
    message = str(caught.value)
    assert str(paths[named]) in message and words in message, message


@pytest.mark.parametrize('damage', ['not gzip', 'truncated gzip'])
def test_bad_gzip_is_a_value_error(tmp_path, damage):
    path = write(tmp_path / 'MNIST/raw/t10k-images-idx3-ubyte.gz', idx_bytes(fake_images(3)))
    path.write_bytes(b'this is not gzip' if damage == 'not gzip' else path.read_bytes()[:-8])
    write(tmp_path / 'MNIST/raw/t10k-labels-idx1-ubyte', idx_bytes([1, 2, 3]))
    with pytest.raises(ValueError, match='t10k-images-idx3-ubyte.gz: not a readable gzip file'):
        MNISTDataset(tmp_path, train=False)


def _corrupt_cifar_cases():
    pixels = fake_images(2, (32, 32), 3)
    good = cifar_batch_bytes(pixels, [0, 1])
    return {  # name: (bytes of test_batch, expected words)
        'truncated pickle': (good[:300], 'not a readable CIFAR-10 batch'),
        'empty file': (b'', 'not a readable CIFAR-10 batch'),
        'random bytes': (bytes(range(256)) * 4, 'not a readable CIFAR-10 batch'),
        'a pickle that calls a function': (pickle.dumps(print), 'refusing to load builtins.print'),
        'a list, not a dict': (pickle.dumps([1, 2], protocol=2), "a dict with keys 'data' and 'labels'; got list"),
        'no labels key': (pickle.dumps({'data': np.zeros((1, 3072), np.uint8)}, protocol=2), "with keys ['data']"),
        'rows of 3000 bytes': (pickle.dumps({'data': np.zeros((2, 3000), np.uint8), 'labels': [0, 1]}, protocol=2),
                               "'data' must be a uint8 array of shape (N, 3072)"),
        'float data': (pickle.dumps({'data': np.zeros((2, 3072)), 'labels': [0, 1]}, protocol=2), 'got float64'),
        'no images': (pickle.dumps({'data': np.zeros((0, 3072), np.uint8), 'labels': []}, protocol=2), 'N ≥ 1'),
        'label 10': (cifar_batch_bytes(pixels, [0, 10]), "'labels' must be 2 ints in 0..9"),
        'one label for two images': (pickle.dumps({'data': np.zeros((2, 3072), np.uint8), 'labels': [0]}, protocol=2),
                                     "'labels' must be 2 ints"),
    }


CORRUPT_CIFAR = _corrupt_cifar_cases()


@pytest.mark.parametrize('case', list(CORRUPT_CIFAR))
def test_corrupt_cifar_batches_are_value_errors_naming_the_file(tmp_path, case):
    blob, words = CORRUPT_CIFAR[case]
    folder = tmp_path / 'cifar-10-batches-py'; folder.mkdir()
    (folder / 'test_batch').write_bytes(blob)
    with pytest.raises(ValueError) as caught:
        CIFAR10Dataset(tmp_path, train=False)
    message = str(caught.value)
    assert str(folder / 'test_batch') in message and words in message, message


# --- CIFAR-10: reading ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('train', [True, False])
def test_cifar_batches(tmp_path, train):
    written = make_cifar_folder(tmp_path / 'cifar-10-batches-py', n=4)
    dataset = CIFAR10Dataset(tmp_path, train=train)
    names = CIFAR10Dataset.train_files if train else CIFAR10Dataset.test_files
    pixels = torch.cat([written[name][0] for name in names]); labels = torch.cat([written[name][1] for name in names])
    assert dataset.data.shape == (4 * len(names), 3, 32, 32) and torch.equal(dataset.data, scaled(pixels))
    assert torch.equal(dataset.targets, labels) and dataset.image_shape == (3, 32, 32)
    images, batch_labels = next(iter(DataLoader(dataset, batch_size=3)))
    assert images.shape == (3, 3, 32, 32) and torch.equal(batch_labels, labels[:3])
    assert dataset.classes[0] == 'airplane' and dataset.classes[9] == 'truck'


def test_cifar_channel_layout(tmp_path):
    "A row is the red plane, then green, then blue, each row-major: pixel (c, y, x) is byte 1024c + 32y + x."
    row = np.zeros(3072, np.uint8); row[1024 * 2 + 32 * 5 + 7] = 255; row[32 * 1 + 0] = 255
    folder = tmp_path / 'cifar-10-batches-py'; folder.mkdir()
    (folder / 'test_batch').write_bytes(pickle.dumps({'data': row[None], 'labels': [3]}, protocol=2))
    image = CIFAR10Dataset(tmp_path, train=False, value_range=(0, 1)).data[0]
    assert image.nonzero().tolist() == [[0, 1, 0], [2, 5, 7]]


def test_cifar_batch_pickled_by_numpy_1(tmp_path, recwarn):
    "The published batches name numpy.core.multiarray (NumPy 1's path): read without a warning under NumPy 2 too."
    pixels = fake_images(2, (32, 32), 3)
    blob = cifar_batch_bytes(pixels, [4, 5])
    old = blob.replace(b'numpy._core.multiarray', b'numpy.core.multiarray') if b'numpy._core' in blob else blob
    assert b'numpy.core.multiarray' in old
    folder = tmp_path / 'cifar-10-batches-py'; folder.mkdir()
    (folder / 'test_batch').write_bytes(old)
    dataset = CIFAR10Dataset(tmp_path, train=False)
    assert torch.equal(dataset.data, scaled(pixels)) and dataset.targets.tolist() == [4, 5]
    assert [str(w.message) for w in recwarn] == []


# --- downloads from file:// mirrors -------------------------------------------------------------------------------

def serve_idx(folder, cls, train=False, n=10):
    "Write the gzipped files of a split into `folder` (the mirror); return pixels, labels and their MD5s."
    split = 'train' if train else 't10k'
    pixels, labels = fake_images(n, seed=3), torch.arange(n) % 10
    md5 = {}
    for name, array in ((f'{split}-images-idx3-ubyte.gz', pixels), (f'{split}-labels-idx1-ubyte.gz', labels)):
        path = write(folder / name, idx_bytes(array))
        md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return pixels, labels, md5


@pytest.mark.parametrize('cls', IDX_CLASSES, ids=lambda c: c.__name__)
def test_idx_download_verify_read(tmp_path, monkeypatch, cls, capsys):
    mirror, root = tmp_path / 'mirror', tmp_path / 'root'
    pixels, labels, md5 = serve_idx(mirror, cls)
    dead = (tmp_path / 'nowhere').as_uri()
    monkeypatch.setattr(cls, 'mirrors', (dead, mirror.as_uri() + '/'))   # the first mirror fails: the next is tried
    monkeypatch.setattr(cls, 'md5', md5)
    dataset = cls(root, train=False, download=True)
    assert torch.equal(dataset.data, scaled(pixels.unsqueeze(1))) and torch.equal(dataset.targets, labels)
    assert sorted(p.name for p in (root / cls.folder).iterdir()) == sorted(md5)   # gzipped, no temporary left
    assert 'downloading' in capsys.readouterr().out
    monkeypatch.setattr(cls, 'mirrors', (dead,))   # present now: download=True fetches nothing
    assert len(cls(root, train=False, download=True)) == 10


def test_download_keeps_a_file_already_there(tmp_path, monkeypatch):
    make_idx_root(tmp_path / 'root', MNISTDataset, gz_images=False)   # a raw images file counts as present
    mirror = tmp_path / 'mirror'
    _, labels, md5 = serve_idx(mirror, MNISTDataset)
    (mirror / 't10k-images-idx3-ubyte.gz').unlink()
    monkeypatch.setattr(MNISTDataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(MNISTDataset, 'md5', md5)
    dataset = MNISTDataset(tmp_path / 'root', train=False, download=True)
    assert torch.equal(dataset.targets, torch.arange(10))


def test_wrong_checksum_is_a_value_error_and_nothing_is_kept(tmp_path, monkeypatch):
    mirror, root = tmp_path / 'mirror', tmp_path / 'root'
    _, _, md5 = serve_idx(mirror, MNISTDataset)
    monkeypatch.setattr(MNISTDataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(MNISTDataset, 'md5', {**md5, 't10k-images-idx3-ubyte.gz': 'f' * 32})
    with pytest.raises(ValueError) as caught:
        MNISTDataset(root, train=False, download=True)
    message = str(caught.value)
    assert 't10k-images-idx3-ubyte.gz' in message and f"published {'f' * 32}" in message and 'discarded' in message
    assert list((root / 'MNIST/raw').iterdir()) == []   # neither the bad file nor a temporary


def test_wrong_checksum_on_one_mirror_falls_back_to_the_next(tmp_path, monkeypatch):
    good, bad, root = tmp_path / 'good', tmp_path / 'bad', tmp_path / 'root'
    _, _, md5 = serve_idx(good, MNISTDataset)
    for name in md5: write(bad / name, b'tampered')
    monkeypatch.setattr(MNISTDataset, 'mirrors', (bad.as_uri(), good.as_uri()))
    monkeypatch.setattr(MNISTDataset, 'md5', md5)
    assert len(MNISTDataset(root, train=False, download=True)) == 10


def test_unreachable_mirrors_are_an_os_error_listing_them(tmp_path, monkeypatch):
    monkeypatch.setattr(MNISTDataset, 'mirrors', ((tmp_path / 'a').as_uri(), (tmp_path / 'b').as_uri()))
    with pytest.raises(OSError) as caught:
        MNISTDataset(tmp_path / 'root', download=True)
    message = str(caught.value)
    assert not isinstance(caught.value, ValueError)
    assert 'could not download train-images-idx3-ubyte.gz from any of 2 mirror(s)' in message
    assert message.count('URLError') == 2


def test_published_checksums_are_complete():
    for cls in IDX_CLASSES:
        assert sorted(cls.md5) == sorted(f'{split}-{kind}.gz' for split in ('train', 't10k')
                                         for kind in ('images-idx3-ubyte', 'labels-idx1-ubyte'))
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in cls.md5.values())
    assert len(CIFAR10Dataset.archive_md5) == 32
    assert MNISTDataset.md5['train-images-idx3-ubyte.gz'] == 'f68b3c2dcbeaaa9fbdd348bbdeb94873'


def serve_cifar(tmp_path, extra_members=()):
    source, mirror = tmp_path / 'source', tmp_path / 'mirror'
    written = make_cifar_folder(source, n=3)
    mirror.mkdir()
    return written, mirror, make_cifar_archive(mirror / 'cifar-10-python.tar.gz', source, extra_members)


def test_cifar_download_verify_extract_read(tmp_path, monkeypatch):
    written, mirror, md5 = serve_cifar(tmp_path)
    monkeypatch.setattr(CIFAR10Dataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(CIFAR10Dataset, 'archive_md5', md5)
    root = tmp_path / 'root'
    train = CIFAR10Dataset(root, download=True)
    assert len(train) == 15 and torch.equal(train.data[:3], scaled(written['data_batch_1'][0]))
    assert sorted(p.name for p in root.iterdir()) == ['cifar-10-batches-py']   # the archive was removed
    assert sorted(p.name for p in (root / 'cifar-10-batches-py').iterdir()) == sorted(written)
    test = CIFAR10Dataset(root, train=False, download=True)   # already there: no second download
    assert torch.equal(test.targets, written['test_batch'][1])


def test_cifar_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    _, mirror, md5 = serve_cifar(tmp_path)
    monkeypatch.setattr(CIFAR10Dataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(CIFAR10Dataset, 'archive_md5', md5[::-1])
    root = tmp_path / 'root'
    with pytest.raises(ValueError, match='does not match the published'):
        CIFAR10Dataset(root, download=True)
    assert list(root.iterdir()) == []


def test_cifar_corrupt_archive_is_a_value_error(tmp_path, monkeypatch):
    mirror = tmp_path / 'mirror'
    blob = b'\x1f\x8b' + b'not really gzip' * 10
    write(mirror / 'cifar-10-python.tar.gz.bin', blob).rename(mirror / 'cifar-10-python.tar.gz')
    monkeypatch.setattr(CIFAR10Dataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(CIFAR10Dataset, 'archive_md5', hashlib.md5(blob).hexdigest())
    with pytest.raises(ValueError, match='not a readable tar archive'):
        CIFAR10Dataset(tmp_path / 'root', download=True)
    assert not (tmp_path / 'root' / 'cifar-10-python.tar.gz').exists()


def test_cifar_archive_cannot_write_outside_its_folder(tmp_path, monkeypatch):
    escape = [('cifar-10-batches-py/../escaped', b'x'), ('../outside', b'x'), ('/tmp/absolute_escape_test_15a', b'x'),
              ('cifar-10-batches-py/sub/nested', b'x')]
    _, mirror, md5 = serve_cifar(tmp_path, escape)
    monkeypatch.setattr(CIFAR10Dataset, 'mirrors', (mirror.as_uri(),))
    monkeypatch.setattr(CIFAR10Dataset, 'archive_md5', md5)
    root = tmp_path / 'root'
    assert len(CIFAR10Dataset(root, train=False, download=True)) == 3
    assert sorted(p.name for p in root.iterdir()) == ['cifar-10-batches-py']
    assert not (tmp_path / 'outside').exists() and not (root / 'escaped').exists()
    assert not (root / 'cifar-10-batches-py' / 'sub').exists() and not Path('/tmp/absolute_escape_test_15a').exists()
