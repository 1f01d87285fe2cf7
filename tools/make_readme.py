"""Write README.md from nbs/index.ipynb without Quarto (nbdev's own `nbdev_readme` needs it).

Applies nbdev's documentation processors to the index notebook alone (hidden cells dropped, doc links added),
then converts it to Markdown with nbconvert. Symbol links, which nbdev points at the documentation site, are turned
into links to the notebook that defines the symbol (nbs/...ipynb): every clone has those, built docs or not, and git
hosts render them. Run after editing nbs/index.ipynb and commit README.md: CI fails when it is stale.
"""
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat, yaml
from execnb.nbio import read_nb, write_nb
from nbconvert import MarkdownExporter
from nbdev.config import get_config
from nbdev.processors import FilterDefaults

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_docs import site_prefixes, notebooks, page_path  # noqa: E402  (the docs build's page names)

cfg = get_config()
os.environ['IN_TEST'] = '1'
nb = read_nb(cfg.nbs_path/cfg.readme_nb)
FilterDefaults()(nb)
with tempfile.TemporaryDirectory() as tmp:
    write_nb(nb, Path(tmp)/'index.ipynb')
    nb = nbformat.read(Path(tmp)/'index.ipynb', as_version=4)
head = ''
if nb.cells and nb.cells[0].cell_type == 'raw' and nb.cells[0].source.startswith('---'):
    front = yaml.safe_load(nb.cells.pop(0).source.strip().strip('-')) or {}
    head = f"# {front.get('title', cfg.lib_name)}\n\n" + (f"> {front['description']}\n\n" if front.get('description') else '')
nb.metadata['language_info'] = {'name': 'python'}
body, resources = MarkdownExporter().from_notebook_node(nb, resources={'output_files_dir': 'README_files'})
for name, data in resources.get('outputs', {}).items():
    Path(name).parent.mkdir(parents=True, exist_ok=True); Path(name).write_bytes(data)
docs = site_prefixes()[0]
pages = {page_path(p).as_posix(): p.relative_to(cfg.config_path).as_posix() for p in notebooks()}
def to_notebook(m):
    page = m.group(2).split('#')[0]
    if page not in pages: sys.exit(f"make_readme: README links to {m.group(2)!r}, which no notebook makes")
    return f"{m.group(1)}({pages[page]})"
body = re.sub(r'(\[[^\]]*\])\(' + re.escape(docs) + r'([^)\s]+)\)', to_notebook, body)
Path(cfg.config_path/'README.md').write_text(head + body.lstrip(), encoding='utf-8')
print('README.md written')
