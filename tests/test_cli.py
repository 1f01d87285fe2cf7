"""The command line as a user runs it, in subprocesses (nbs/80_cli.ipynb, nbs/85_bench.ipynb): --version, the usage line
each program shows, the thread default, the bench output folder and header, and the messages when matplotlib is missing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torchebm_nb

NO_MATPLOTLIB = "import sys; sys.modules.update(dict.fromkeys(['matplotlib', 'matplotlib.pyplot', 'matplotlib.figure']))\n"


def run(args, cwd=None, threads='1', code=None):
    "Run `python -m torchebm_nb <args>` (or `python -c code`) with OMP_NUM_THREADS=threads (None: unset), no MKL_NUM_THREADS."
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    if threads is not None: env['OMP_NUM_THREADS'] = threads
    env['PYTHONPATH'] = os.pathsep.join([str(Path(torchebm_nb.__file__).parents[1]), env.get('PYTHONPATH', '')])
    cmd = [sys.executable, '-c', code, *args] if code else [sys.executable, '-m', 'torchebm_nb', *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_version():
    r = run(['--version'])
    assert (r.returncode, r.stdout.strip()) == (0, f"torchebm_nb {torchebm_nb.__version__}"), r


def test_console_script_version():
    script = Path(sys.executable).parent / 'torchebm-nb'
    if not script.exists(): pytest.skip('the torchebm-nb console script is not installed beside this python')
    r = subprocess.run([str(script), '--version'], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == f"torchebm_nb {torchebm_nb.__version__}", r


@pytest.mark.parametrize('args, prog', [(['bench', '--help'], 'torchebm-nb bench'),
                                        (['--help'], 'torchebm-nb')])
def test_usage_names_the_program(args, prog):
    r = run(args)
    assert r.returncode == 0 and r.stdout.startswith(f'usage: {prog} ['), r.stdout[:200]


def test_bench_module_usage_names_the_module():
    r = run(['--help'], code='from torchebm_nb.bench import main; import sys; raise SystemExit(main(sys.argv[1:]))')
    assert r.stdout.startswith('usage: python -m torchebm_nb.bench ['), r.stdout[:200]


@pytest.mark.parametrize('threads, line', [(None, 'threads: 1 (set OMP_NUM_THREADS to change)'),
                                           ('2', 'threads: 2 (from OMP_NUM_THREADS=2)')])
def test_demo_prints_its_threads(threads, line):
    r = run(['demo', '--chains', '16', '--steps', '2'], threads=threads)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == line, r.stdout


def test_demo_plot_without_matplotlib_fails_before_sampling(tmp_path):
    r = run(['demo', '--plot', str(tmp_path / 'demo.png')],
            code=NO_MATPLOTLIB + 'from torchebm_nb.cli import main; raise SystemExit(main(sys.argv[1:]))')
    assert r.returncode == 2, r
    assert 'torchebm-nb demo --plot: matplotlib is not installed' in r.stderr, r.stderr
    assert 'pip install "torchebm_nb[plot]"' in r.stderr, r.stderr
    assert 'demo:' not in r.stdout and not (tmp_path / 'demo.png').exists(), r.stdout


def test_demo_plot_writes_the_figure(tmp_path):
    r = run(['demo', '--chains', '64', '--steps', '10', '--plot', str(tmp_path / 'demo.png')])
    assert r.returncode == 0 and (tmp_path / 'demo.png').stat().st_size > 0, r.stderr


def test_bench_writes_into_the_folder_it_prints(tmp_path):
    r = run(['bench', '--quick', '--only', 'interpolants.Linear', '--no-plot'], cwd=tmp_path, threads=None)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == 'torchebm_nb bench: scale quick, device cpu, threads: 1 (set OMP_NUM_THREADS to change)', lines
    assert lines[1].startswith('output folder: bench-results/'), lines
    folder = tmp_path / lines[1].split(': ', 1)[1]
    assert sorted(p.name for p in folder.iterdir()) == ['bench.json', 'bench.txt'], list(folder.iterdir())
    text = (folder / 'bench.txt').read_text()
    assert text.splitlines()[1].startswith('# device cpu') and 'threads 1' in text.splitlines()[1], text
    assert '# columns: family, name, time (ms per unit)' in text and text.strip() in r.stdout, text
    meta = json.loads((folder / 'bench.json').read_text())['meta']
    assert meta['torch_threads'] == 1 and meta['command'].startswith('torchebm-nb bench --quick') and meta['columns'], meta


def test_bench_without_matplotlib_fails_before_running(tmp_path):
    r = run(['--quick', '--out-dir', str(tmp_path / 'out')],
            code=NO_MATPLOTLIB + 'from torchebm_nb.bench import main; raise SystemExit(main(sys.argv[1:]))')
    assert r.returncode == 2 and 'pip install "torchebm_nb[plot]"' in r.stderr and '--no-plot' in r.stderr, r
    assert not (tmp_path / 'out').exists() and 'output folder' not in r.stdout, r.stdout


def test_info_lists_public_names_only():
    r = run(['info'])
    assert r.returncode == 0, r.stderr
    listed = [(line.split(' (')[0], name) for line in r.stdout.splitlines() if '): ' in line
              for name in line.split('): ', 1)[1].split(', ')]
    assert {pkg for pkg, _ in listed} == set(torchebm_nb._SUBPACKAGES)
    assert [f"{pkg}.{name}" for pkg, name in listed if name.startswith('_')] == []
    assert ('core', 'BaseTrainer') in listed and ('core', 'ContrastiveDivergenceTrainer') in listed
