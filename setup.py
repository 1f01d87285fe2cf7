# Package metadata lives in settings.ini (nbdev's single config file); edit it there, not here.
from configparser import ConfigParser
from pathlib import Path
import shlex

import setuptools

parser = ConfigParser(delimiters=['='])
parser.read('settings.ini', encoding='utf-8')
cfg = parser['DEFAULT']

required = ('version description keywords author author_email lib_name lib_path user branch license '
            'status min_python audience language git_url').split()
missing = [k for k in required if k not in cfg]
if missing: raise SystemExit(f"settings.ini is missing: {', '.join(missing)}")

spdx = {'apache2': 'Apache-2.0', 'mit': 'MIT', 'bsd3': 'BSD-3-Clause', 'gpl3': 'GPL-3.0-or-later'}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
pythons = '3.11 3.12 3.13 3.14'.split()
reqs = lambda key: shlex.split(cfg.get(key, ''))
# every `<extra>_requirements` key is an extra: plot, dev, cuda12, cuda13, cuda (cuda13's alias), ...
extras = {key[:-len('_requirements')]: reqs(key) for key in cfg if key.endswith('_requirements')}
readme = Path('README.md')

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=spdx.get(cfg['license'].lower(), cfg['license']),
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + v for v in pythons[pythons.index(cfg['min_python']):]],
    **({'url': cfg['git_url']} if cfg['git_url'].startswith('http') else {}),   # no public repository yet (settings.ini)
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=reqs('requirements'),
    extras_require=extras,
    python_requires='>=' + cfg['min_python'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else '',
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
