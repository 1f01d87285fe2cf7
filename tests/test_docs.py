"""The documentation builds: nbdev's doc rules hold in every notebook, and tools/MAKE_DOCS.py renders pages."""
import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NBS = Path(get_config().nbs_path)
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)


def _load_make_docs():
    spec = importlib.util.spec_from_file_location('make_docs', ROOT / 'tools' / 'make_docs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_DOCS = _load_make_docs()


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_imports_have_cells_of_their_own(path):
    assert MAKE_DOCS.mixed_import_cells(path) == [], f"{path.name}: cells mixing imports with other code (index, first line)"


def test_make_docs_renders_pages(tmp_path):
    chosen = [NBS / 'index.ipynb', NBS / '00_core' / '00a_validation.ipynb']
    written = MAKE_DOCS.build(chosen, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == ['00_core/00a_validation.html', 'index.html']
    page = (tmp_path / '00_core' / '00a_validation.html').read_text()
    assert '<h1 id=' in page and 'check_int' in page          # the title from the front matter; show_doc rendered
    assert '#| export' not in page and 'nbdev_export' not in page  # exported and hidden cells dropped
    assert 'href="../index.html"' in page                        # navigation, relative to the page
    assert '{target="_blank"' not in page


def test_make_docs_names_a_broken_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Broken'),
                                         nbformat.v4.new_code_cell('import math\nx = math.pi')])
    bad = NBS / '_test_broken_page.ipynb'
    nbformat.write(nb, bad)
    try:
        with pytest.raises(MAKE_DOCS.DocBuildError, match='_test_broken_page.ipynb: cell 1 mixes imports'):
            MAKE_DOCS.build([bad], tmp_path)
    finally:
        bad.unlink()
