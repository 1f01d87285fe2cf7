"""The built documentation, opened in a real browser (headless Chromium driven by Playwright, tools/docs_browser.py):
no console errors and no network requests, maths typeset (no raw `$...$` left, no KaTeX errors), no `#|` directive
in sight, figures loaded, and the search box finds a class's page. Skipped, saying why, where Chromium or Playwright is
absent; .ci/run installs both, so CI runs it."""
import importlib.util
import sys
from pathlib import Path

import pytest
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NBS = Path(get_config().nbs_path)
sys.path.insert(0, str(ROOT / 'tools'))          # docs_browser and make_docs live in tools/
import docs_browser  # noqa: E402

pytestmark = pytest.mark.skipif(bool(docs_browser.missing()), reason=f'browser checks cannot run: {docs_browser.missing()}')

SAMPLE = ['index.ipynb', '00_core/02b_mcmc_protocol.ipynb', '20_samplers/01_hmc.ipynb', '20_samplers/05_mala.ipynb',
          '40_losses/01_score_matching.ipynb', '90_tutorials/02_choosing_a_sampler.ipynb']


def _make_docs():
    spec = importlib.util.spec_from_file_location('make_docs', ROOT / 'tools' / 'make_docs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    written = _make_docs().build([NBS / p for p in SAMPLE], out)
    with docs_browser.Browser() as browser:
        yield out, written, browser


def test_pages_read_cleanly_in_chromium(site):
    out, written, browser = site
    assert len(written) == len(SAMPLE)
    reports = {p.relative_to(out).as_posix(): browser.check(p.as_uri()) for p in written}
    faults = {page: docs_browser.problems(r) for page, r in reports.items() if docs_browser.problems(r)}
    assert faults == {}
    assert reports['20_samplers/mala.html']['katex'] > 20            # the maths is typeset, not left as TeX
    assert reports['20_samplers/mala.html']['images'] >= 2           # and the stored figures load
    assert reports['90_tutorials/choosing_a_sampler.html']['images'] >= 1


def test_search_finds_a_class(site):
    out, _, browser = site
    hits = browser.search((out / 'index.html').as_uri(), 'HamiltonianMonteCarlo')
    assert hits and hits[0] == '20_samplers/hmc.html#hamiltonianmontecarlo', hits
    hits = browser.search((out / '20_samplers' / 'mala.html').as_uri(), 'score matching')
    assert hits and hits[0].startswith('../40_losses/score_matching.html'), hits


def test_search_result_opens_the_page(site):
    out, _, browser = site
    page = browser.open((out / 'index.html').as_uri())
    page.fill('#search-box', 'MetropolisAdjustedLangevin')
    page.wait_for_selector('#search-results li a')
    page.keyboard.press('Enter')
    page.wait_for_url('**/20_samplers/mala.html#metropolisadjustedlangevin')
    assert page.locator('#metropolisadjustedlangevin').is_visible()
