"""Build the documentation as static HTML without Quarto (it cannot be installed on the offline build machines).

    python tools/make_docs.py                    # every notebook under nbs/ -> _docs/
    python tools/make_docs.py --out site nbs/20_samplers/05_mala.ipynb

Each notebook goes through nbdev's documentation processors, the ones `nbdev_docs` applies before Quarto renders a
page: hidden and exported cells dropped, `show_doc` cells executed and rendered, doc links added. nbconvert then writes
one HTML page per notebook, mirroring nbs/, with a navigation list of every page prepended to its body; `index.html`
comes from nbs/index.ipynb. Figures are the ones stored in the notebooks (refresh them with tools/run_notebooks.py).
Maths is typeset by MathJax, loaded from its CDN when a page is opened. Where Quarto exists, `nbdev_docs` builds
the real site from the same notebooks and the top-level _quarto.yml.
"""
import argparse
import ast
import html
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import re
import yaml
from execnb.nbio import read_nb, write_nb
from nbconvert import HTMLExporter
from nbdev.config import get_config
from nbdev.processors import FilterDefaults

CFG = get_config()
NBS = Path(CFG.nbs_path)


class DocBuildError(RuntimeError):
    "A notebook that nbdev's documentation processors cannot render."


def notebooks(paths=None):
    "The notebooks to render: those named or found under the given paths (default: all of nbs/), sorted."
    found = []
    for p in (Path(x).resolve() for x in (paths or [NBS])):
        if p.is_dir(): found += [q for q in p.rglob('*.ipynb') if '.ipynb_checkpoints' not in q.parts]
        elif p.suffix == '.ipynb' and p.exists(): found.append(p)
        else: raise FileNotFoundError(f"make_docs: no notebook at {p}")
    return sorted(set(found))


def page_path(nb_path: Path) -> Path:
    "Where a notebook's page goes, relative to the output folder: nbs/20_samplers/05_mala.ipynb -> 20_samplers/05_mala.html."
    rel = nb_path.resolve().relative_to(NBS.resolve())
    return rel.with_suffix('.html')


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


def processed(nb_path: Path):
    "The notebook after nbdev's documentation processors, as an nbformat node; `DocBuildError` names what broke."
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
    node.metadata['language_info'] = {'name': 'python'}
    if node.cells and node.cells[0].cell_type == 'raw' and node.cells[0].source.startswith('---'):
        front = yaml.safe_load(node.cells.pop(0).source.strip().strip('-')) or {}   # nbdev's front matter: title, summary
        head = f"# {front.get('title', nb_path.stem)}" + (f"\n\n> {front['description']}" if front.get('description') else '')
        node.cells.insert(0, nbformat.v4.new_markdown_cell(head))
    return node


def title(nb_path: Path) -> str:
    "The first level-1 heading of the notebook, else its file name."
    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type == 'markdown':
            for line in cell.source.splitlines():
                if line.startswith('# '): return line[2:].strip()
    return nb_path.stem


def navigation(pages, here: Path) -> str:
    "An HTML list linking every page, relative to the page `here`, the current one marked."
    up = '../' * (len(here.parts) - 1)
    items = []
    for rel, name in pages:
        label = html.escape(f"{rel.parent}/{name}" if str(rel.parent) != '.' else name)
        link = f'<a href="{up}{rel.as_posix()}">{label}</a>'
        items.append(f'<li><strong>{link}</strong></li>' if rel == here else f'<li>{link}</li>')
    return ('<nav style="font-size:0.85em;border-bottom:1px solid #ccc;margin-bottom:1em"><details><summary>'
            f'{html.escape(CFG.lib_name)} documentation: all pages</summary><ul>' + ''.join(items) + '</ul></details></nav>')


_QUARTO_ATTRIBUTES = re.compile(r'\{target="_blank"[^}]*\}')   # Quarto link attributes in show_doc's source links

def build(paths=None, out: Path = Path(CFG.config_path) / '_docs') -> list:
    "Render the notebooks to `out`; returns the pages written. Raises `DocBuildError` listing every notebook that failed."
    out = Path(out)
    chosen = notebooks(paths)
    pages = [(Path('index.html') if p.resolve() == (NBS / CFG.readme_nb).resolve() else page_path(p), title(p)) for p in chosen]
    exporter = HTMLExporter(template_name='classic', exclude_input_prompt=True, exclude_output_prompt=True)
    written, errors = [], []
    for nb_path, (rel, name) in zip(chosen, pages):
        try: node = processed(nb_path)
        except DocBuildError as error:
            errors.append(str(error)); continue
        body, _ = exporter.from_notebook_node(node, resources={'metadata': {'name': name}})
        body = _QUARTO_ATTRIBUTES.sub('', body).replace('<body>', '<body>\n' + navigation(pages, rel), 1)
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding='utf-8')
        written.append(target)
    if errors: raise DocBuildError('the documentation processors failed on:\n  ' + '\n  '.join(errors))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('paths', nargs='*', help='notebooks or folders (default: nbs/)')
    parser.add_argument('--out', default=str(Path(CFG.config_path) / '_docs'), help='output folder (default _docs/)')
    args = parser.parse_args(argv)
    try: written = build(args.paths or None, Path(args.out))
    except DocBuildError as error:
        print(error, file=sys.stderr); return 1
    print(f"{len(written)} pages written under {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
