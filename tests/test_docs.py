"""The documentation builds: nbdev's doc rules hold in every notebook, and tools/make_docs.py renders pages the way a
Quarto nbdev site does (directives honoured, import lines, local links and assets, sidebar, search index)."""
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NBS = Path(get_config().nbs_path)
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_DOCS = _load('make_docs')
SAMPLE = [NBS / 'index.ipynb', NBS / '00_core' / '00a_validation.ipynb', NBS / '20_samplers' / '05_mala.ipynb']


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_imports_have_cells_of_their_own(path):
    assert MAKE_DOCS.mixed_import_cells(path) == [], f"{path.name}: cells mixing imports with other code (index, first line)"


def test_page_names_are_nbdevs():
    assert MAKE_DOCS.page_path(NBS / '20_samplers' / '05_mala.ipynb').as_posix() == '20_samplers/mala.html'
    assert MAKE_DOCS.page_path(NBS / '00_core' / '00a_validation.ipynb').as_posix() == '00_core/validation.html'
    assert MAKE_DOCS.page_path(NBS / 'index.ipynb').as_posix() == 'index.html'
    pages = [MAKE_DOCS.page_path(p).as_posix() for p in MAKE_DOCS.notebooks()]
    assert len(pages) == len(set(pages)), 'two notebooks map to the same page'
    # the pages nbdev's symbol index links to are the pages this build writes
    from torchebm_nb._modidx import d
    linked = {target.split('#')[0] for mod in d['syms'].values() for target, _ in mod.values()}
    assert linked <= set(pages), sorted(linked - set(pages))


def test_directives_are_honoured():
    cells = [nbformat.v4.new_code_cell('#| echo: false\n#| output: asis\nshow_doc(f)', outputs=[
                 nbformat.v4.new_output('execute_result', {'text/markdown': '---\n\n### f\n\nDoes f.', 'text/plain': 'f'})]),
             nbformat.v4.new_code_cell('#| echo: false\nprint(1)', outputs=[nbformat.v4.new_output('stream', text='1\n')]),
             nbformat.v4.new_code_cell('#| output: false\nx = 2\nx', outputs=[nbformat.v4.new_output('execute_result', {'text/plain': '2'})]),
             nbformat.v4.new_code_cell('#| include: false\nsecret()'),
             nbformat.v4.new_code_cell('#| hide\nhidden()'),
             nbformat.v4.new_code_cell('#|code-fold: true\ny = 3')]
    got = MAKE_DOCS.blocks(nbformat.v4.new_notebook(cells=cells))
    assert [kind for kind, _ in got] == ['doc', 'output', 'code', 'code']
    assert got[0][1].startswith('---') and got[2][1] == 'x = 2\nx' and got[3][1] == 'y = 3'
    body, headings = MAKE_DOCS.render(got, '')
    assert '#|' not in body and 'show_doc' not in body and 'secret()' not in body and 'hidden()' not in body
    assert '<div class="doc-entry"><h3 id="f"' in body and '<hr' not in body
    assert headings == [(3, 'f', 'f')]


def test_outputs_render():
    warning = nbformat.v4.new_output('stream', name='stderr', text='/tmp/ipykernel_27149/3827499667.py:11: UnconvergedWarning: x < y\n')
    assert MAKE_DOCS.render_output(warning) == '<pre class="stderr">UnconvergedWarning: x &lt; y\n</pre>'
    figure = nbformat.v4.new_output('display_data', {'image/png': 'iVBORw0KGgo=\n', 'text/plain': '<Figure size 400x300>'})
    assert MAKE_DOCS.render_output(figure) == '<img src="data:image/png;base64,iVBORw0KGgo=" alt="&lt;Figure size 400x300&gt;">'
    plain = nbformat.v4.new_output('execute_result', {'text/plain': 'tensor([1.])'})
    assert MAKE_DOCS.render_output(plain) == '<pre>tensor([1.])</pre>'


def test_links_and_anchors():
    docs, source = MAKE_DOCS.site_prefixes()
    md = (f"[source]({source}torchebm_nb/samplers/mala.py#L20){{target=\"_blank\" style=\"float:right\"}}\n\n"
          f"see [`HamiltonianMonteCarlo`]({docs}20_samplers/hmc.html#hamiltonianmontecarlo)")
    assert MAKE_DOCS.local_links(md, '../') == '\n\nsee [`HamiltonianMonteCarlo`](../20_samplers/hmc.html#hamiltonianmontecarlo)'
    assert MAKE_DOCS.slug('LangevinDynamics.__init__') == 'langevindynamics.__init__'
    assert MAKE_DOCS.slug('No bias at <em>any</em> step size') == 'no-bias-at-any-step-size'
    seen, found = {}, []
    body = MAKE_DOCS.anchor_headings('<h2 id="x">Same</h2><h2 id="y">Same</h2>', seen, found)
    assert [i for *_, i in found] == ['same', 'same-1'] and 'id="same-1"' in body


def test_import_line_names_the_public_import():
    line = MAKE_DOCS.import_line('torchebm_nb.samplers.mala')
    assert 'torchebm_nb.samplers' in line and 'MetropolisAdjustedLangevin' in line and 'torchebm_nb.samplers.mala' not in line
    assert MAKE_DOCS.import_line(None) == ''


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')
    written = MAKE_DOCS.build(SAMPLE, out)
    return out, written


def test_make_docs_renders_pages(site):
    out, written = site
    assert sorted(p.relative_to(out).as_posix() for p in written) == ['00_core/validation.html', '20_samplers/mala.html', 'index.html']
    page = (out / '20_samplers' / 'mala.html').read_text()
    assert '<h1 id="metropolis-adjusted-langevin-title"' in page and 'class="subtitle"' in page
    assert re.search(r'class="import-line">.*torchebm_nb\.samplers.*MetropolisAdjustedLangevin', page, re.S)
    assert 'id="metropolisadjustedlangevin"' in page                   # show_doc's heading: the anchor symbol links use
    assert '#|' not in page and 'nbdev_export' not in page and 'show_doc' not in page
    assert '{target="_blank"' not in page and 'github.io' not in page
    assert not re.search(r'<(script|link|img)\b[^>]*\b(src|href)="(https?:)?//', page)   # nothing loaded from the network
    assert 'href="../index.html"' in page and 'class="active"' in page    # sidebar, relative to the page
    assert re.search(r'<script defer src="\.\./_static/katex/katex\.min\.js">', page)
    assert 'data:image/png;base64,' in page                                # the stored figures
    for asset in ('katex/katex.min.css', 'katex/contrib/auto-render.min.js', 'site.css', 'site.js', 'search_index.js'):
        assert (out / '_static' / asset).exists(), asset
    assert list((out / '_static' / 'katex' / 'fonts').glob('*.woff2'))


def test_search_index(site):
    out, _ = site
    text = (out / '_static' / 'search_index.js').read_text()
    entries = json.loads(text[text.index('=') + 1:].rstrip().rstrip(';'))
    mala = next(e for e in entries if e['u'] == '20_samplers/mala.html')
    assert mala['t'] == 'Metropolis-adjusted Langevin' and mala['s'] == 'Samplers'
    assert ['MetropolisAdjustedLangevin', 'metropolisadjustedlangevin', 1] in mala['h']
    assert 'metropolis' in mala['x']


def test_broken_links_are_found(site, tmp_path):
    out, written = site
    assert MAKE_DOCS.broken_links(out, written) == []
    bad = tmp_path / 'index.html'
    bad.write_text('<a href="#nowhere">x</a><a href="20_samplers/missing.html">y</a><a href="20_samplers/hmc.html">z</a>'
                   '<a href="https://example.org/">w</a>')
    assert MAKE_DOCS.broken_links(tmp_path, [bad]) == ['index.html: #nowhere (no such anchor)',
                                                       'index.html: 20_samplers/missing.html (no such file)']


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


def test_readme_links_resolve_in_a_clone():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    targets = re.findall(r'\]\(([^)\s]+)\)', text)
    assert 'github.io' not in text and [t for t in targets if t.startswith('_docs/')] == []   # _docs/ is built, not cloned
    local = [t for t in targets if not re.match(r'^[a-z][a-z0-9+.-]*:', t, re.I)]
    assert local, 'the README links no notebook'
    assert [t for t in local if not (ROOT / t.split('#')[0]).exists()] == []
