"""The MNIST section of nbs/90_tutorials/03_digits_ebm.ipynb, which the notebook's own run skips (no MNIST files in CI).

The tutorial's setup, configuration and function cells run here with the MNIST cells, against a small MNIST-shaped
folder written to a temporary directory (8×8 digits enlarged to 28×28, in the IDX format), so the branch that readers
with the real files take is exercised; and without the files the section must print its note and do nothing.
"""
import gzip
import math
import struct

import matplotlib
import nbformat
import pytest
import torch
import torch.nn.functional as F
from nbdev.config import get_config

matplotlib.use('Agg')
NOTEBOOK = get_config().nbs_path / '90_tutorials' / '03_digits_ebm.ipynb'
FIRST_WORDS = ('import ', 'from ', 'def ', 'config = ', 'value = ')   # imports, setup, configuration, definitions


def _setup_and_mnist_cells() -> str:
    "The code of the cells the MNIST section needs, and of the section itself, in notebook order."
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    chosen = [c.source for c in cells if c.cell_type == 'code' and not c.source.startswith('#|')
              and (c.source.startswith(FIRST_WORDS) or 'mnist' in c.source)]
    return '\n\n'.join(chosen)


def _write_idx(path, array: torch.Tensor) -> None:
    "An IDX file of unsigned bytes, gzipped."
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
    with gzip.open(path, 'wb') as file: file.write(header + array.to(torch.uint8).numpy().tobytes())


@pytest.fixture
def mnist_root(tmp_path):
    "A folder laid out as torchvision's MNIST (root/MNIST/raw), holding 300 training and 100 test images."
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = F.interpolate(torch.tensor(digits.images, dtype=torch.float32)[:400, None], size=(28, 28), mode='bilinear')
    pixels, labels = (images[:, 0] * (255 / 16)).round().clamp(0, 255), torch.tensor(digits.target[:400])
    raw = tmp_path / 'MNIST' / 'raw'; raw.mkdir(parents=True)
    for split, part in (('train', slice(0, 300)), ('t10k', slice(300, 400))):
        _write_idx(raw / f'{split}-images-idx3-ubyte.gz', pixels[part])
        _write_idx(raw / f'{split}-labels-idx1-ubyte.gz', labels[part])
    return tmp_path


def _run(monkeypatch, root) -> dict:
    monkeypatch.setenv('TORCHEBM_NB_FULL_SIZE', '0'); monkeypatch.setenv('TORCHEBM_NB_MNIST_ROOT', str(root))
    namespace = {}
    threads = torch.get_num_threads()
    try: exec(compile(_setup_and_mnist_cells(), str(NOTEBOOK), 'exec'), namespace)
    finally: torch.set_num_threads(threads)
    return namespace


def test_the_mnist_section_runs_the_same_code_on_mnist_files(monkeypatch, mnist_root):
    ns = _run(monkeypatch, mnist_root)
    assert len(ns['mnist_train']) == 300 and len(ns['mnist_test']) == 100
    assert set(ns['m_results']) == {'floor: train vs test', 'baseline: Gaussian fit', 'PCD: its buffer', 'PCD: from noise'}
    assert all(math.isfinite(v) and v >= 0 for v in ns['m_results'].values()), ns['m_results']
    assert tuple(ns['m_snapshots'].shape) == (16, 1, 28, 28)            # one stage at the test size
    assert tuple(ns['m_loss'].replay_buffer.shape[1:]) == (1, 28, 28)
    assert ns['m_seconds'] > 0


def test_without_the_files_the_section_prints_a_note_and_does_nothing(monkeypatch, tmp_path, capsys):
    ns = _run(monkeypatch, tmp_path / 'nowhere')
    assert ns['mnist_train'] is None and 'm_results' not in ns
    out = capsys.readouterr().out
    assert 'MNIST section skipped' in out and str(tmp_path / 'nowhere' / 'MNIST' / 'raw') in out, out
