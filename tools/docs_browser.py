"""Open pages of the built documentation in headless Chromium and check what a reader sees; take screenshots.

    python tools/docs_browser.py _docs index.html 20_samplers/mala.html            # check pages, print the findings
    python tools/docs_browser.py _docs --screenshots tools/docs/screenshots index.html 20_samplers/mala.html

Used by tests/test_docs_browser.py. Needs Playwright's Python package (`pip install -e ".[docs]"`) and a Chromium
binary: Debian's `chromium` (apt-get install chromium) at /usr/bin/chromium, or CHROMIUM=path. No browser is
downloaded: Playwright drives the system Chromium. Pages are opened from file:// URLs, as a reader opening
_docs/index.html would; Chromium runs with its background networking off, so a page that tried to fetch anything from
the network would show it as a failed request.
"""
import argparse
import os
import re
import shutil
import sys
from pathlib import Path

CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']


def chromium_path():
    "The Chromium binary to drive (CHROMIUM, else chromium on PATH), or None."
    found = os.environ.get('CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
    return found if found and Path(found).exists() else None


def missing() -> str:
    "Why the browser checks cannot run here, or '' when they can."
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'Playwright is not installed (pip install -e ".[docs]")'
    if not chromium_path(): return 'no Chromium binary (apt-get install chromium, or set CHROMIUM)'
    return ''


class Browser:
    "A headless Chromium session: `with Browser() as b: report = b.check(url)`."
    def __enter__(self):
        from playwright.sync_api import sync_playwright
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        self.page = self.browser.new_page(viewport={'width': 1400, 'height': 900})
        self.console, self.failed, self.remote = [], [], []
        self.page.on('console', lambda m: self.console.append(f'{m.type}: {m.text}') if m.type in ('error', 'warning') else None)
        self.page.on('pageerror', lambda e: self.console.append(f'pageerror: {e}'))
        self.page.on('requestfailed', lambda r: self.failed.append(r.url))
        self.page.on('request', lambda r: None if r.url.startswith(('file:', 'data:', 'about:')) else self.remote.append(r.url))
        return self

    def __exit__(self, *exc):
        self.browser.close(); self._pw.stop()

    def open(self, url: str):
        "Load a page and wait until its maths is typeset."
        self.console.clear(); self.failed.clear(); self.remote.clear()
        self.page.goto(url)
        self.page.wait_for_function("document.documentElement.getAttribute('data-math') === 'done'", timeout=20000)
        return self.page

    def check(self, url: str) -> dict:
        "What a reader of `url` would meet: console errors, failed or network requests, raw TeX, visible `#|`, broken images, KaTeX errors."
        page = self.open(url)
        seen = page.evaluate("""() => {
            const main = document.querySelector('main');
            const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
            const texts = [];
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                if (n.parentElement.closest('pre, code, script, style, .katex')) continue;
                texts.push(n.textContent);
            }
            const code = Array.from(main.querySelectorAll('pre')).map(e => e.innerText).join(String.fromCharCode(10));
            return {prose: texts.join(' '), code: code,
                    images: Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.alt.slice(0, 60)]),
                    katex: document.querySelectorAll('.katex').length,
                    katex_errors: Array.from(document.querySelectorAll('.katex-error')).map(e => e.textContent.slice(0, 80))};
        }""")
        raw_tex = re.findall(r'\$\$?[^$\n]{1,80}?\$\$?|\\\(|\\\[', seen['prose'])
        return {'console': list(self.console), 'failed_requests': list(self.failed), 'network': list(self.remote), 'raw_tex': raw_tex,
                'directives': re.findall(r'(?m)^\s*#\|[^\n]{0,40}', seen['code']), 'katex': seen['katex'],
                'katex_errors': seen['katex_errors'], 'images': len(seen['images']),
                'broken_images': [alt for ok, alt in seen['images'] if not ok]}

    def search(self, url: str, query: str) -> list:
        "Type `query` into the search box of `url`; the results' link targets, best first."
        page = self.open(url)
        page.fill('#search-box', query)
        page.wait_for_selector('#search-results li', timeout=10000)
        return page.eval_on_selector_all('#search-results a', 'els => els.map(e => e.getAttribute("href"))')

    def screenshot(self, url: str, path: Path) -> Path:
        path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
        self.open(url).screenshot(path=str(path))
        return path


def problems(report: dict) -> list:
    "The findings of `Browser.check` that are faults."
    return [f'{k}: {report[k]}' for k in ('console', 'failed_requests', 'network', 'raw_tex', 'directives', 'katex_errors', 'broken_images')
            if report[k]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python tools/docs_browser.py', description=__doc__.splitlines()[0])
    parser.add_argument('site', help='the built documentation folder (e.g. _docs)')
    parser.add_argument('pages', nargs='+', help='pages relative to the site (e.g. index.html 20_samplers/mala.html)')
    parser.add_argument('--screenshots', help='also save a PNG of each page into this folder')
    args = parser.parse_args(argv)
    why = missing()
    if why: print(f'docs_browser: cannot run: {why}', file=sys.stderr); return 2
    site, bad = Path(args.site).resolve(), 0
    with Browser() as browser:
        for rel in args.pages:
            url = (site / rel).as_uri()
            report = browser.check(url)
            found = problems(report)
            bad += bool(found)
            print(f"{rel}: {report['katex']} formulas, {report['images']} images" + (' — ' + '; '.join(found) if found else ', ok'))
            if args.screenshots:
                shot = browser.screenshot(url, Path(args.screenshots) / (rel.replace('/', '_').replace('.html', '.png')))
                print(f'  screenshot {shot}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
