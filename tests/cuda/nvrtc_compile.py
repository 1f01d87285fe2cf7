"""Compile CUDA source with NVRTC through ctypes: the compiler CuPy uses at run time, which needs no GPU.

Finds libnvrtc from $TORCHEBM_NB_NVRTC (a path to the library), an installed `nvidia-cuda-nvrtc` wheel, or the
system library path. `compile_ptx` returns the PTX text or raises RuntimeError with NVRTC's log. `sm90_ptx` compiles
with CuPy's options for sm_90, by NVRTC when it is found and otherwise by nvcc when that is on PATH.
"""
import ctypes
import ctypes.util
import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from typing import Optional, Sequence


def find_nvrtc() -> Optional[str]:
    "Path (or soname) of libnvrtc, or None."
    env = os.environ.get('TORCHEBM_NB_NVRTC')
    if env and os.path.exists(env): return env
    for pkg in ('nvidia.cu13', 'nvidia.cuda_nvrtc', 'nvidia'):
        try: spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError): spec = None
        for root in (spec.submodule_search_locations or []) if spec else []:
            hits = sorted(glob.glob(os.path.join(root, '**', 'libnvrtc.so*'), recursive=True))
            hits = [h for h in hits if 'alt' not in os.path.basename(h) and 'builtins' not in os.path.basename(h)]
            if hits: return hits[0]
    return ctypes.util.find_library('nvrtc')


def compile_ptx(source: str, options: Sequence[str] = (), arch: str = 'compute_90', lib: Optional[str] = None) -> str:
    "PTX for `source`, compiled by NVRTC with `options` for virtual architecture `arch`."
    path = lib or find_nvrtc()
    if path is None: raise FileNotFoundError('libnvrtc not found')
    nvrtc = ctypes.CDLL(path)
    prog = ctypes.c_void_p()
    def check(code, what):
        if code != 0:
            nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
            raise RuntimeError(f'{what}: {nvrtc.nvrtcGetErrorString(code).decode()}')
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b'kernels.cu', 0, None, None), 'nvrtcCreateProgram')
    try:
        opts = [o.encode() for o in (*options, f'--gpu-architecture={arch}')]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        code = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(prog, log)
        if code != 0: raise RuntimeError(f'NVRTC compilation failed:\n{log.value.decode(errors="replace")}')
        nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        check(nvrtc.nvrtcGetPTX(prog, ptx), 'nvrtcGetPTX')
        return ptx.value.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))


NVCC = shutil.which('nvcc')


def sm90_ptx(source: str, options: Sequence[str]) -> str:
    "PTX for sm_90 with `options` and the `-ftz=true` CuPy appends: NVRTC when libnvrtc is found, else nvcc."
    if find_nvrtc() is not None: return compile_ptx(source, (*options, '-ftz=true'))
    if NVCC is None: raise FileNotFoundError('neither libnvrtc nor nvcc is available')
    opts = [o.replace('--std=', '-std=').replace('--fmad=', '-fmad=') for o in options]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, 'kernels.cu'), os.path.join(tmp, 'kernels.ptx')
        with open(src, 'w') as f: f.write(source)
        done = subprocess.run([NVCC, '-arch=sm_90', '-ptx', *opts, '-ftz=true', src, '-o', out], capture_output=True, text=True)
        if done.returncode: raise RuntimeError(f'nvcc failed:\n{done.stderr[-3000:]}')
        with open(out) as f: return f.read()
