"""Static checks of the package's structure: the kernel code lives in `cuda/` only, the tools built on the step protocol use
public names only, and no module of the samplers, losses or core imports another module's underscore names."""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'torchebm_nb'


def sources(*folders):
    for folder in folders:
        yield from sorted((PACKAGE / folder).glob('*.py'))


def private_imports(path: Path):
    "Names starting with one underscore that `path` imports from another module of the package."
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('torchebm_nb')):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith('_') and not a.name.startswith('__')]
    return found


@pytest.mark.parametrize('word', ['chain_runner', '_kernel_plan', '_kernel_mode', 'use_cuda_kernels'])
def test_no_kernel_plumbing_in_samplers_or_core(word):
    hits = [f"{p.relative_to(PACKAGE)}:{i}" for p in sources('samplers', 'core')
            for i, line in enumerate(p.read_text(encoding='utf-8').splitlines(), 1) if word in line]
    assert hits == [], hits


def test_samplers_and_core_do_not_import_the_kernels():
    hits = [str(p.relative_to(PACKAGE)) for p in sources('samplers', 'core')
            if re.search(r'^\s*(from|import)\s+(\.\.cuda|torchebm_nb\.cuda)', p.read_text(encoding='utf-8'), re.M)]
    assert hits == [], hits


def test_adaptation_calls_no_private_sampler_method():
    text = (PACKAGE / 'samplers' / 'adaptation.py').read_text(encoding='utf-8')
    assert re.findall(r'\bsampler\._\w+', text) == []


@pytest.mark.parametrize('folder', ['core', 'samplers', 'losses', 'cuda'])
def test_no_private_names_imported_across_modules(folder):
    "Within these layers a shared piece is public; the one exception is the package's own once-only warning registry."
    allowed = {'.._deprecation._WARNED_ONCE', '_deprecation._WARNED_ONCE'}
    found = {f"{p.name}: {name}" for p in sources(folder) for name in private_imports(p)
             if name.lstrip('.') not in {a.lstrip('.') for a in allowed}}
    assert found == set(), sorted(found)
