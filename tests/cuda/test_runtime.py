"""CPU tests of torchebm_nb.cuda.runtime: detection never raises, the off switch, caching, error messages."""
import sys
import types

import numpy as np
import pytest
import torch

import torchebm_nb.cuda as tcuda
from torchebm_nb.cuda import runtime


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.delenv(runtime.DISABLE_ENV_VAR, raising=False)
    runtime._reset_cache(); runtime.enable_kernels()
    yield
    runtime._reset_cache(); runtime.enable_kernels()


def test_no_top_level_cupy_import():
    assert 'cupy' not in vars(runtime)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only answer')
@pytest.mark.parametrize('device', [None, 'cpu', 'cuda', 'cuda:0', 0, torch.device('cuda', 1), 'bogus'])
def test_detection_false_without_gpu(device):
    assert runtime.kernels_available(device) is False


def test_get_cupy_import_attempted_once(monkeypatch):
    calls = []
    def failing(name): calls.append(name); raise ImportError('no cupy')
    monkeypatch.setattr(runtime, '_importer', failing)
    assert runtime.get_cupy() is None and runtime.get_cupy() is None
    assert calls == ['cupy']


def test_get_cupy_caches_module(monkeypatch):
    fake, calls = object(), []
    monkeypatch.setattr(runtime, '_importer', lambda name: calls.append(name) or fake)
    assert runtime.get_cupy() is fake and runtime.get_cupy() is fake
    assert calls == ['cupy']


def test_get_cupy_broken_install_is_none(monkeypatch):
    def broken(name): raise RuntimeError('CUDA driver too old')
    monkeypatch.setattr(runtime, '_importer', broken)
    assert runtime.get_cupy() is None


@pytest.fixture
def fake_gpu(monkeypatch):
    "Pretend torch sees a GPU and the probe succeeds; count probes."
    probes = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(runtime, '_probe', lambda index: probes.append(index) or True)
    return probes


def test_probe_cached_per_device(fake_gpu):
    assert runtime.kernels_available() and runtime.kernels_available('cuda:0') and runtime.kernels_available(0)
    assert runtime.kernels_available('cuda:1')
    assert fake_gpu == [0, 1]
    assert runtime.kernels_available('cpu') is False


def test_switch_and_env_var(fake_gpu, monkeypatch):
    assert runtime.kernels_available()
    tcuda.disable_kernels(); assert runtime.kernels_available() is False and runtime.kernels_disabled()
    tcuda.enable_kernels(); assert runtime.kernels_available()
    for value in ('1', 'true', 'ON'):
        monkeypatch.setenv(runtime.DISABLE_ENV_VAR, value); assert runtime.kernels_available() is False
    monkeypatch.setenv(runtime.DISABLE_ENV_VAR, '0'); assert runtime.kernels_available()
    assert fake_gpu == [0]   # switching never re-probes


def test_probe_exception_means_false(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    def boom(index): raise RuntimeError('CUDARuntimeError: no device')
    monkeypatch.setattr(runtime, '_probe', boom)
    assert runtime.kernels_available() is False


def test_probe_with_fake_cupy_without_cuda(monkeypatch):
    class FakeCuda:
        @staticmethod
        def is_available(): return False
    class FakeCupy: cuda = FakeCuda
    monkeypatch.setattr(runtime, '_importer', lambda name: FakeCupy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    assert runtime.kernels_available() is False


def test_as_cupy_errors():
    with pytest.raises(TypeError, match='expects a torch.Tensor'): runtime.as_cupy(np.zeros(3))
    with pytest.raises(ValueError, match='expects a CUDA tensor'): runtime.as_cupy(torch.zeros(3))


def test_as_torch_errors():
    with pytest.raises(TypeError, match='already is one'): runtime.as_torch(torch.zeros(3))
    with pytest.raises(TypeError, match='DLPack producer'): runtime.as_torch([1.0])
    with pytest.raises(ValueError, match='expects a GPU array'): runtime.as_torch(np.zeros(3))


def test_current_stream_without_cupy(monkeypatch):
    def failing(name): raise ImportError('no cupy')
    monkeypatch.setattr(runtime, '_importer', failing)
    with pytest.raises(RuntimeError, match='CuPy is not installed'): runtime.current_stream()



def test_current_stream_uses_the_stream_protocol(monkeypatch):
    "CuPy ≥ 14 wraps foreign streams through __cuda_stream__; torch streams without it get a handle that has it."
    class FakeStream:
        def __init__(self, ptr): self.cuda_stream, self.device = ptr, torch.device('cuda', 0)
    class FakeCupyStream:
        @classmethod
        def from_external(cls, obj): return ('wrapped', obj.__cuda_stream__())
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(Stream=FakeCupyStream))
    monkeypatch.setattr(runtime, '_importer', lambda name: fake_cupy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_stream', lambda device=None: FakeStream(1234))
    assert runtime.current_stream() == ('wrapped', (0, 1234))
    with_protocol = FakeStream(99)
    with_protocol.__cuda_stream__ = lambda: (0, 99)
    monkeypatch.setattr(torch.cuda, 'current_stream', lambda device=None: with_protocol)
    assert runtime.current_stream() == ('wrapped', (0, 99))


@pytest.mark.cuda
def test_gpu_roundtrip_and_stream():
    pytest.importorskip('cupy')
    assert runtime.kernels_available()
    t = torch.arange(6., device='cuda').reshape(2, 3)
    a = runtime.as_cupy(t); a[0, 0] = 42.
    assert t[0, 0].item() == 42.
    b = runtime.as_torch(a); b[1, 2] = -1.
    assert t[1, 2].item() == -1.
    with pytest.raises(ValueError, match='contiguous'): runtime.as_cupy(t.T)
    with pytest.raises(ValueError, match='C-contiguous'): runtime.as_torch(a.T)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s): assert runtime.current_stream().ptr == s.cuda_stream
