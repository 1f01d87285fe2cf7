"""Build the documentation as a static website without Quarto (it cannot be installed on the offline build machines).

    python tools/make_docs.py                    # every notebook under nbs/ -> _docs/ (open _docs/index.html)
    python tools/make_docs.py --out site nbs/20_samplers/05_mala.ipynb

The pages read like the Quarto site `nbdev_docs` would make from the same notebooks:
- each notebook goes through nbdev's documentation processors (hidden and exported cells dropped, `show_doc` cells
  run, symbol names linked); then Quarto's cell directives are honoured here: `echo: false` hides a cell's code,
  `output: false` its output, `output: asis` turns a markdown output (a `show_doc` entry) into page text,
  `include: false` and `hide` drop the cell; no `#|` line is ever shown;
- a module's page says under its title how its public names are imported;
- maths is typeset in the browser by a local copy of KaTeX, installed from the npm registry at build time
  (tools/docs/package.json, exact version and checksum in package-lock.json) and copied to `_static/katex/`:
  nothing is fetched from the network when a page is viewed, and pages work from `file://`;
- symbol links point at the local pages (nbdev's page names: `20_samplers/05_mala.ipynb` -> `20_samplers/mala.html`),
  and every link between pages is checked after the build, anchors included;
- a sidebar lists the pages in reading order (the numbered folders), each page has a table of contents, and a search
  box searches titles, headings, symbols and text through a client-side index (`_static/search_index.js`).
Figures are the ones stored in the notebooks (refresh them with tools/run_notebooks.py). tools/docs_browser.py opens
the built pages in headless Chromium (tests/test_docs_browser.py, and screenshots for reviewers: tools/docs/screenshots/,
made by `python tools/docs_browser.py _docs --screenshots tools/docs/screenshots index.html 20_samplers/mala.html
90_tutorials/choosing_a_sampler.html`).
"""
import argparse
import ast
import html
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import yaml
from execnb.nbio import read_nb, write_nb
from nbconvert.filters.ansi import ansi2html
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbdev.config import get_config
from nbdev.processors import FilterDefaults
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

CFG = get_config()
NBS = Path(CFG.nbs_path)
ASSETS = Path(__file__).resolve().parent / 'docs'          # site.css, site.js, package.json (KaTeX)
KATEX_DIST = ASSETS / 'node_modules' / 'katex' / 'dist'

SECTIONS = {'00_core': 'Core', '10_integrators': 'Integrators', '20_samplers': 'Samplers', '30_paths': 'Interpolants',
            '35_couplings': 'Couplings', '40_losses': 'Losses', '50_data_models': 'Datasets and models',
            '60_cuda': 'CUDA kernels', '70_utils': 'Utilities', '90_tutorials': 'Tutorials'}
TOP_SECTION = 'Command line and benchmarks'               # notebooks at the top of nbs/ other than the index


class DocBuildError(RuntimeError):
    "A notebook that cannot be rendered, a missing asset, or links between pages that do not resolve."


def notebooks(paths=None):
    "The notebooks to render: those named or found under the given paths (default: all of nbs/), sorted."
    found = []
    for p in (Path(x).resolve() for x in (paths or [NBS])):
        if p.is_dir(): found += [q for q in p.rglob('*.ipynb') if '.ipynb_checkpoints' not in q.parts
                                 and not any(part.startswith(('_', '.')) for part in q.relative_to(p).parts)]
        elif p.suffix == '.ipynb' and p.exists(): found.append(p)
        else: raise FileNotFoundError(f"make_docs: no notebook at {p}")
    return sorted(set(found))


def page_path(nb_path: Path) -> Path:
    "A notebook's page relative to the site, named as nbdev names it: nbs/20_samplers/05_mala.ipynb -> 20_samplers/mala.html."
    rel = nb_path.resolve().relative_to(NBS.resolve())
    if rel == Path(CFG.readme_nb): return Path('index.html')
    return rel.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower())).with_suffix('.html')


def section(nb_path: Path) -> str:
    "The sidebar group of a notebook: its folder's name, or the group of top-level pages."
    rel = nb_path.resolve().relative_to(NBS.resolve())
    if len(rel.parts) == 1: return '' if rel == Path(CFG.readme_nb) else TOP_SECTION
    folder = rel.parts[0]
    return SECTIONS.get(folder, re.sub(r'^\d+_', '', folder).replace('_', ' ').capitalize())


_EXECUTED_WHOLE = {'export', 'exports', 'exporti', 'exec_doc'}   # directives under which nbdev runs a cell anyway

def mixed_import_cells(nb_path: Path) -> list:
    "(index, first line) of the code cells that import and also run other statements, which STYLE.md forbids."
    found = []   # nbdev's doc build executes every cell that imports, so such a cell runs whole while pages render
    for i, cell in enumerate(nbformat.read(nb_path, as_version=4).cells):
        if cell.cell_type != 'code' or 'nbdev_export()' in cell.source: continue
        directives = {line[3:].split(':')[0].split()[0] for line in cell.source.splitlines()
                      if line.startswith('#| ') and line[3:].strip()}
        if directives & _EXECUTED_WHOLE: continue
        code = '\n'.join(line for line in cell.source.splitlines() if not line.lstrip().startswith(('%', '!')))
        try: nodes = list(ast.walk(ast.parse(code)))
        except SyntaxError: continue
        if (any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
                and any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes)):
            found.append((i, cell.source.splitlines()[0]))
    return found


def default_exp(nb_path: Path):
    "The module a notebook exports to (`#| default_exp`), as `torchebm_nb.…`, or None."
    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type == 'code':
            m = re.search(r'^#\|\s*default_exp\s+(\S+)', cell.source, re.M)
            if m: return f"{CFG.lib_name}.{m.group(1)}"
    return None


def processed(nb_path: Path):
    "The notebook after nbdev's documentation processors, as (title, description, nbformat node); `DocBuildError` names what broke."
    mixed = mixed_import_cells(nb_path)
    if mixed:
        raise DocBuildError(f"{nb_path.name}: cell {mixed[0][0]} mixes imports with other code (starts {mixed[0][1]!r}); "
                            "put the imports in a cell of their own")
    os.environ['IN_TEST'] = '1'   # what nbdev sets while it renders docs
    try:
        nb = read_nb(nb_path)
        FilterDefaults()(nb)
    except Exception as error:
        raise DocBuildError(f"{nb_path.name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
    with tempfile.TemporaryDirectory() as tmp:
        write_nb(nb, Path(tmp) / 'page.ipynb')
        node = nbformat.read(Path(tmp) / 'page.ipynb', as_version=4)
    title, description = nb_path.stem, ''
    if node.cells and node.cells[0].cell_type == 'raw' and node.cells[0].source.startswith('---'):
        front = yaml.safe_load(node.cells.pop(0).source.strip().strip('-')) or {}   # nbdev's front matter
        title, description = str(front.get('title', title)), str(front.get('description', '') or '')
    elif node.cells and node.cells[0].cell_type == 'markdown' and node.cells[0].source.startswith('# '):
        head, _, rest = node.cells[0].source.partition('\n')
        title = head[2:].strip()
        quote = re.match(r'\s*>\s*(.+?)(?:\n\s*\n|\Z)', rest, re.S)
        if quote: description, rest = quote.group(1).replace('\n>', ' ').strip(), rest[quote.end():]
        node.cells[0].source = rest
    return title, description, node


_DIRECTIVE = re.compile(r'^#\|\s*([\w-]+)\s*(?::\s*(.*?))?\s*$')

def directives(source: str):
    "A code cell's `#|` directives as a dict (value '' for a bare flag), and its source without them."
    found, kept = {}, []
    for line in source.splitlines():
        m = _DIRECTIVE.match(line)
        if m: found[m.group(1)] = (m.group(2) or '').strip().lower()
        else: kept.append(line)
    return found, '\n'.join(kept).strip('\n')


def blocks(node) -> list:
    """The page's content as ('markdown', text), ('code', source) and ('output', output) blocks, Quarto's directives
    applied: `include: false`/`hide` drop a cell, `echo: false` its code, `output: false` its outputs, and
    `output: asis` makes a markdown output page text ('doc' for `show_doc` entries)."""
    out = []
    for cell in node.cells:
        if cell.cell_type == 'markdown':
            out.append(('markdown', cell.source)); continue
        if cell.cell_type != 'code': continue
        found, code = directives(cell.source)
        if found.get('include') == 'false' or 'hide' in found: continue
        if found.get('echo') != 'false' and code.strip(): out.append(('code', code))
        if found.get('output') == 'false': continue
        for output in cell.get('outputs', []):
            data = output.get('data', {})
            if found.get('output') == 'asis' and ('text/markdown' in data or 'text/plain' in data):
                text = data.get('text/markdown', data.get('text/plain', ''))
                text = ''.join(text) if isinstance(text, list) else text
                out.append(('doc' if 'show_doc' in code else 'markdown', text))
            else: out.append(('output', output))
    return out


def site_prefixes():
    "The URL prefix nbdev gives symbol links, and the source-link prefix, from the installed package's _modidx."
    try: settings = importlib.import_module(f'{CFG.lib_name}._modidx').d['settings']
    except (ImportError, KeyError, AttributeError): settings = {k: CFG.get(k, '') for k in ('doc_host', 'doc_baseurl', 'git_url', 'branch')}
    docs = urljoin(urljoin(settings.get('doc_host', '') + '/', settings.get('doc_baseurl', '')) + '/', '')
    source = urljoin(settings.get('git_url', '') + '/', f"blob/{settings.get('branch', 'main')}/")
    return docs, source

_SOURCE_LINK = r'\[source\]\({src}[^)\s]*\)(\{{[^}}]*\}})?'
_ATTRIBUTES = re.compile(r'\{target="_blank"[^}]*\}')   # Quarto link attributes nbdev writes into show_doc's markdown

def local_links(markdown: str, up: str) -> str:
    """Symbol links rewritten to the local pages (relative to a page `up` levels deep); show_doc's source links, which
    point at a repository host, dropped (the page shows the source's signature and docs already)."""
    docs, source = site_prefixes()
    markdown = re.sub(_SOURCE_LINK.format(src=re.escape(source)), '', markdown)
    if docs and docs != '/': markdown = re.sub(r'(\]\(|href=")' + re.escape(docs), lambda m: m.group(1) + up, markdown)
    return _ATTRIBUTES.sub('', markdown)


def slug(text: str) -> str:
    "A heading's anchor as nbdev and Quarto make it: lower case, spaces to '-', only letters, digits, '_', '-' and '.'."
    text = re.sub(r'[^\w\s.-]', '', html.unescape(re.sub(r'<[^>]+>', '', text)).lower(), flags=re.UNICODE)
    return re.sub(r'\s+', '-', text.strip()) or 'section'


_HEADING = re.compile(r'<h([1-6])([^>]*)>(.*?)</h\1>', re.S)
_ANCHOR_LINK = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)

def anchor_headings(body: str, seen: dict, headings: list) -> str:
    "Give every heading a Quarto-style id (unique in the page) and a ¶ link; append (level, text, id) to `headings`."
    def fix(m):
        level, inner = int(m.group(1)), _ANCHOR_LINK.sub('', m.group(3))
        ident = base = slug(inner)
        if ident in seen: seen[base] += 1; ident = f"{base}-{seen[base]}"
        seen.setdefault(ident, 0)
        headings.append((level, html.unescape(re.sub(r'<[^>]+>', '', inner)).strip(), ident))
        return f'<h{level} id="{ident}" class="anchored">{inner}<a class="anchor-link" href="#{ident}" aria-hidden="true">¶</a></h{level}>'
    return _HEADING.sub(fix, body)


_FORMATTER = HtmlFormatter(cssclass='highlight')
_KERNEL_FILE = re.compile(r'^\S*ipykernel_\d+/\d+\.py:\d+: ', re.M)   # a warning's location in a kernel's temporary file

def render_output(output) -> str:
    "One stored output as HTML: text streams and tracebacks as text, a figure as an image, markdown as page text."
    kind = output.get('output_type')
    if kind == 'stream':
        text = _KERNEL_FILE.sub('', ''.join(output.get('text', '')))
        return f'<pre class="{html.escape(output.get("name", "stdout"))}">{ansi2html(text)}</pre>'
    if kind == 'error':
        return f'<pre class="error">{ansi2html(chr(10).join(output.get("traceback", [])))}</pre>'
    data = output.get('data', {})
    for mime in ('image/png', 'image/jpeg'):
        if mime in data:
            alt = html.escape(''.join(data.get('text/plain', 'figure'))[:200])
            return f'<img src="data:{mime};base64,{"".join(data[mime]).strip()}" alt="{alt}">'
    if 'image/svg+xml' in data: return ''.join(data['image/svg+xml'])
    if 'text/html' in data: return ''.join(data['text/html'])
    if 'text/markdown' in data: return markdown2html_mistune(''.join(data['text/markdown']))
    if 'text/plain' in data: return f'<pre>{ansi2html("".join(data["text/plain"]))}</pre>'
    return ''


def render(items, up: str):
    "The page body from its blocks; returns (html, headings)."
    parts, seen, headings = [], {}, []
    for kind, value in items:
        if kind in ('markdown', 'doc'):
            if kind == 'doc': value = re.sub(r'^\s*---[ \t]*\n', '', value)   # show_doc's rule: the entry's border instead
            body = anchor_headings(markdown2html_mistune(local_links(value, up)), seen, headings)
            parts.append(f'<div class="doc-entry">{body}</div>' if kind == 'doc' else body)
        elif kind == 'code':
            parts.append(f'<div class="cell cell-code">{highlight(value, PythonLexer(), _FORMATTER)}</div>')
        else:
            rendered = render_output(value)
            if 'text/markdown' in value.get('data', {}): rendered = anchor_headings(local_links(rendered, up), seen, headings)
            if rendered: parts.append(f'<div class="cell-output">{rendered}</div>')
    return '\n'.join(parts), headings


def import_line(module_name) -> str:
    "How a module's public names are imported: from the highest subpackage that re-exports each of them."
    if not module_name: return ''
    try: module = importlib.import_module(module_name)
    except Exception as error: raise DocBuildError(f"{module_name} does not import ({type(error).__name__}: {error})") from error
    names = [n for n in getattr(module, '__all__', []) if not n.startswith('_')]
    if not names: return ''
    parts, by_source = module_name.split('.'), {}
    for name in names:
        source = next((p for p in ('.'.join(parts[:k]) for k in range(2, len(parts)))
                       if getattr(importlib.import_module(p), name, None) is getattr(module, name)), module_name)
        by_source.setdefault(source, []).append(name)
    lines = []
    for source, found in by_source.items():
        line = f"from {source} import {', '.join(found)}"
        if len(line) > 100: line = f"from {source} import (\n" + textwrap.fill(', '.join(found) + ',', 96, initial_indent='    ',
                                                                              subsequent_indent='    ', break_on_hyphens=False) + '\n)'
        lines.append(line)
    code = highlight('\n'.join(lines), PythonLexer(), _FORMATTER)
    return f'<div class="import-line"><span class="label">Import</span>{code}</div>'


def sidebar(pages, here: Path, up: str) -> str:
    "The sidebar: every page in reading order, grouped by section; the current section open, the current page marked."
    groups, out = [], [f'<a class="home" href="{up}index.html">{html.escape(CFG.lib_name)}</a>']
    for page in pages:
        if page['section'] == '': continue
        if not groups or groups[-1][0] != page['section']: groups.append((page['section'], []))
        groups[-1][1].append(page)
    for name, members in groups:
        here_in = any(p['rel'] == here for p in members)
        links = ''.join(f'<li><a href="{up}{p["rel"].as_posix()}"' + (' class="active" aria-current="page"' if p['rel'] == here else '')
                        + f'>{html.escape(p["title"])}</a></li>' for p in members)
        out.append(f'<details{" open" if here_in else ""}><summary>{html.escape(name)}</summary><ul>{links}</ul></details>')
    return '<nav class="sidebar" aria-label="pages">' + ''.join(out) + '</nav>'


def contents(headings) -> str:
    "The page's table of contents (level-2 and level-3 headings)."
    items = ''.join(f'<li class="level-{lvl}"><a href="#{ident}">{html.escape(text)}</a></li>'
                    for lvl, text, ident in headings if lvl in (2, 3))
    return f'<nav class="toc" aria-label="on this page"><h2>On this page</h2><ul>{items}</ul></nav>' if items else ''


def page_html(page, pages, body: str, headings, up: str) -> str:
    "A whole page: head (local stylesheets and scripts only), top bar with search, sidebar, contents, body, previous/next."
    i = next(k for k, p in enumerate(pages) if p['rel'] == page['rel'])
    nav = ''.join(f'<a href="{up}{p["rel"].as_posix()}">{arrow}{html.escape(p["title"])}{tail}</a>' if p else '<span></span>'
                  for p, arrow, tail in ((pages[i - 1] if i > 0 else None, '← ', ''),
                                         (pages[i + 1] if i + 1 < len(pages) else None, '', ' →')))
    subtitle = f'<p class="subtitle">{html.escape(page["description"])}</p>' if page['description'] else ''
    return f"""<!DOCTYPE html>
<html lang="en" data-root="{up}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page['title'])} – {html.escape(CFG.lib_name)}</title>
<link rel="stylesheet" href="{up}_static/katex/katex.min.css">
<link rel="stylesheet" href="{up}_static/site.css">
<script defer src="{up}_static/katex/katex.min.js"></script>
<script defer src="{up}_static/katex/contrib/auto-render.min.js"></script>
<script defer src="{up}_static/site.js"></script>
</head>
<body>
<header class="topbar"><a class="site-title" href="{up}index.html">{html.escape(CFG.lib_name)}</a>
<span class="site-version">{html.escape(CFG.version)}</span>
<div class="search" role="search"><input id="search-box" type="search" placeholder="Search the docs" aria-label="Search the docs" autocomplete="off">
<ul id="search-results" hidden></ul></div></header>
{sidebar(pages, page['rel'], up)}
{contents(headings)}
<main>
<h1 id="{slug(page['title'])}-title" class="title">{html.escape(page['title'])}</h1>
{subtitle}
{page['import']}
{body}
<div class="page-nav">{nav}</div>
</main>
</body>
</html>
"""


def plain_text(body: str) -> str:
    "A page's words for the search index: tags, images and maths markup removed, lower case, one space between words."
    body = re.sub(r'<(script|style)[^>]*>.*?</\1>', ' ', body, flags=re.S)
    body = re.sub(r'<img[^>]*>', ' ', body)
    return re.sub(r'\s+', ' ', html.unescape(re.sub(r'<[^>]+>', ' ', body))).strip().lower()


def search_entry(page, body: str, headings) -> dict:
    "A page's record in the search index: title, URL, section, headings (symbols flagged), and text."
    return {'t': page['title'], 'u': page['rel'].as_posix(), 's': page['section'] or 'Home',
            'h': [[text, ident, int(lvl >= 3 and bool(re.fullmatch(r'[\w.]+', text)))] for lvl, text, ident in headings],
            'x': plain_text(body)[:20000]}


def ensure_katex(npm: str = None) -> Path:
    "KaTeX's dist folder, installed with `npm ci` into tools/docs/node_modules on first use (exact version, checksummed)."
    if (KATEX_DIST / 'katex.min.js').exists(): return KATEX_DIST
    npm = npm or shutil.which('npm')
    if not npm:
        raise DocBuildError("the docs typeset maths with KaTeX, installed from the npm registry when the docs are built, "
                            "and npm is not on PATH: install Node.js with npm (Debian: apt-get install npm), then rerun")
    run = subprocess.run([npm, 'ci', '--no-audit', '--no-fund', '--loglevel=error'], cwd=ASSETS, capture_output=True, text=True)
    if run.returncode or not (KATEX_DIST / 'katex.min.js').exists():
        raise DocBuildError(f"npm ci in {ASSETS} failed (exit {run.returncode}): {(run.stderr or run.stdout).strip()[-800:]}")
    return KATEX_DIST


def write_assets(out: Path, entries) -> None:
    "_static/: KaTeX (stylesheet, scripts, woff2 fonts), the site's stylesheet with pygments' colours, its script, the index."
    static = out / '_static'
    katex = ensure_katex()
    (static / 'katex' / 'contrib').mkdir(parents=True, exist_ok=True)
    (static / 'katex' / 'fonts').mkdir(exist_ok=True)
    for name in ('katex.min.css', 'katex.min.js', 'contrib/auto-render.min.js'):
        shutil.copyfile(katex / name, static / 'katex' / name)
    for font in (katex / 'fonts').glob('*.woff2'): shutil.copyfile(font, static / 'katex' / 'fonts' / font.name)
    css = (ASSETS / 'site.css').read_text(encoding='utf-8') + '\n/* pygments */\n' + _FORMATTER.get_style_defs('.highlight')
    (static / 'site.css').write_text(css, encoding='utf-8')
    shutil.copyfile(ASSETS / 'site.js', static / 'site.js')
    (static / 'search_index.js').write_text('window.TORCHEBM_NB_SEARCH = ' + json.dumps(entries, ensure_ascii=False, separators=(',', ':'))
                                           + ';\n', encoding='utf-8')


_HREF = re.compile(r'<(?:a|link|script|img)\b[^>]*?\b(?:href|src)="([^"]*)"')
_ID = re.compile(r'\bid="([^"]+)"')

def broken_links(out: Path, written) -> list:
    """Links between the pages written that do not resolve: a missing file under `out`, or an anchor that the target page
    lacks. Links to pages of the site that this build did not write (a partial build) are not judged."""
    known = {p.relative_to(out).as_posix() for p in written}
    every_page = {page_path(nb).as_posix() for nb in notebooks()}
    ids = {rel: set(_ID.findall((out / rel).read_text(encoding='utf-8'))) for rel in known}
    broken = []
    for rel in sorted(known):
        text = (out / rel).read_text(encoding='utf-8')
        for target in _HREF.findall(text):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith('//'): continue   # absolute URLs, data:
            path, _, anchor = html.unescape(target).partition('#')
            resolved = rel if not path else os.path.normpath(os.path.join(os.path.dirname(rel), path)).replace(os.sep, '/')
            if resolved in known:
                if anchor and anchor not in ids[resolved]: broken.append(f"{rel}: {target} (no such anchor)")
            elif resolved in every_page and resolved not in known: continue
            elif not (out / resolved).exists(): broken.append(f"{rel}: {target} (no such file)")
    return broken


_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)

def settle_links(body: str, rel: Path, nb_path: Path, ids: dict) -> str:
    """Links in a page body made to work in the site: a link to a notebook (`../20_samplers/05_mala.ipynb#x`) goes to
    its page, as Quarto does; a symbol link whose target page has no entry of that name (nbdev links every backticked
    name it indexed, documented or not) becomes plain code. Other links are left for `broken_links` to judge."""
    here = rel.parent.as_posix()
    def fix(m):
        target, inner = html.unescape(m.group(1)), m.group(2)
        path, hash_, anchor = target.partition('#')
        if path.endswith('.ipynb') and not re.match(r'^[a-z][a-z0-9+.-]*:', path, re.I):
            nb = (nb_path.parent / path).resolve()
            if nb.exists() and NBS.resolve() in nb.parents:
                path = os.path.relpath(page_path(nb).as_posix(), here or '.').replace(os.sep, '/')
                return f'<a href="{html.escape(path + hash_ + anchor)}">{inner}</a>'
        if anchor and path and inner.startswith('<code>') and not re.match(r'^[a-z][a-z0-9+.-]*:', path, re.I):
            page = os.path.normpath(os.path.join(here, path)).replace(os.sep, '/')
            if page in ids and anchor not in ids[page]: return inner
        return m.group(0)
    return _LINK.sub(fix, body)


def build(paths=None, out: Path = Path(CFG.config_path) / '_docs', check_links: bool = True) -> list:
    "Render the notebooks to `out`; returns the pages written. Raises `DocBuildError` listing every problem found."
    out = Path(out)
    chosen = notebooks(paths)
    pages = [{'nb': p, 'rel': page_path(p), 'section': section(p)} for p in chosen]
    clash = {r for r in (p['rel'] for p in pages) if sum(q['rel'] == r for q in pages) > 1}
    if clash: raise DocBuildError(f"two notebooks would write the same page: {sorted(map(str, clash))}")
    ensure_katex()
    errors = []
    for page in pages:
        try:
            page['title'], page['description'], node = processed(page['nb'])
            page['import'] = import_line(default_exp(page['nb']))
        except DocBuildError as error:
            errors.append(str(error)); continue
        page['up'] = '../' * (len(page['rel'].parts) - 1)
        page['body'], page['headings'] = render(blocks(node), page['up'])
    if errors: raise DocBuildError('the documentation processors failed on:\n  ' + '\n  '.join(errors))
    ids = {p['rel'].as_posix(): {i for *_, i in p['headings']} for p in pages}
    written, entries = [], []
    for page in pages:
        body = settle_links(page['body'], page['rel'], page['nb'], ids)
        target = out / page['rel']
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page_html(page, pages, body, page['headings'], page['up']), encoding='utf-8')
        entries.append(search_entry(page, body, page['headings']))
        written.append(target)
    write_assets(out, entries)
    if check_links:
        broken = broken_links(out, written)
        if broken: raise DocBuildError(f"{len(broken)} links between pages do not resolve:\n  " + '\n  '.join(broken[:40]))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python tools/make_docs.py', description=__doc__.splitlines()[0])
    parser.add_argument('paths', nargs='*', help='notebooks or folders (default: nbs/)')
    parser.add_argument('--out', default=str(Path(CFG.config_path) / '_docs'), help='output folder (default _docs/)')
    parser.add_argument('--no-link-check', action='store_true', help='skip checking the links between pages')
    args = parser.parse_args(argv)
    try: written = build(args.paths or None, Path(args.out), check_links=not args.no_link_check)
    except DocBuildError as error:
        print(f"make_docs: {error}", file=sys.stderr); return 1
    print(f"{len(written)} pages written under {args.out}; open {Path(args.out) / 'index.html'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
