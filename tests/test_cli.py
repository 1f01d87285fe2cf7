"""The command line as a user runs it, in subprocesses (nbs/80_cli.ipynb, nbs/85_bench.ipynb): --version, the usage line
each program shows, the thread default, the bench output folder and header, and the messages when matplotlib is missing;
and the training demo (issue 15) in-process through `main([...])` at tiny sizes: the folder it prints and the files it
writes, its JSON, bad values (exit 2, before any model is built), an unwritable folder (exit 1), Ctrl-C (exit 130 with a
partial JSON), seeded reproducibility and the digits path."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torchebm_nb
from torchebm_nb import cli
from torchebm_nb.core.base_trainer import BaseTrainer

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
    r = run(['demo', '--method', 'sample', '--chains', '16', '--steps', '2'], threads=threads)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == line, r.stdout


def test_demo_plot_without_matplotlib_fails_before_sampling(tmp_path):
    r = run(['demo', '--method', 'sample', '--plot', str(tmp_path / 'demo.png')],
            code=NO_MATPLOTLIB + 'from torchebm_nb.cli import main; raise SystemExit(main(sys.argv[1:]))')
    assert r.returncode == 2, r
    assert 'torchebm-nb demo --plot: matplotlib is not installed' in r.stderr, r.stderr
    assert 'pip install "torchebm_nb[plot]"' in r.stderr, r.stderr
    assert 'demo:' not in r.stdout and not (tmp_path / 'demo.png').exists(), r.stdout


def test_demo_plot_writes_the_figure(tmp_path):
    r = run(['demo', '--method', 'sample', '--chains', '64', '--steps', '10', '--plot', str(tmp_path / 'demo.png')])
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


# ---- the training demo, in-process ---------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def small_evaluation(monkeypatch):
    "The 2-D evaluation on 300 held-out points and 40-step chains: the tests check the plumbing, the notebook the numbers."
    real = cli._demo_data
    def smaller(dataset, device, seed):
        data = real(dataset, device, seed)
        return data if dataset == 'digits' else {**data, 'test': data['test'][:300], 'second': data['second'][:300]}
    monkeypatch.setattr(cli, '_demo_data', smaller)
    monkeypatch.setattr(cli, '_EVAL_STEPS', 40)


def demo_main(capsys, *args):
    "Run `main(['demo', *args])`; returns (exit code, stdout, stderr)."
    code = cli.main(['demo', *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def folder_of(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith('output folder: ')]
    assert len(lines) == 1, stdout
    return Path(lines[0].split(': ', 1)[1])


def test_demo_prints_the_folder_and_writes_figure_and_metrics(tmp_path, capsys):
    code, out, err = demo_main(capsys, '--steps', '20', '--out-dir', str(tmp_path / 'run'))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith('torchebm_nb') and 'eight-gaussians, pcd with langevin' in lines[0], lines
    assert lines[1] == f"output folder: {tmp_path / 'run'}", lines            # the folder comes before the training
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == ['figure.png', 'metrics.json']
    assert 'training' in err and 'loss=' in err, err[-500:]                    # the progress bar with the live loss
    m = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    assert {k: m[k] for k in ('dataset', 'method', 'sampler', 'steps', 'steps_done', 'seed', 'device', 'interrupted', 'figure')} == \
        dict(dataset='eight-gaussians', method='pcd', sampler='langevin', steps=20, steps_done=20, seed=0, device='cpu',
             interrupted=False, figure='figure.png')
    assert m['seconds'] > 0 and len(m['loss_every_10_steps']) == 2 and m['final_loss'] == m['loss_every_10_steps'][-1], m
    for name in ('trained', 'untrained', 'data_floor'):
        assert set(m['samples'][name]) == {'mmd', 'energy_distance'} and m['samples'][name]['energy_distance'] >= 0, m
    assert m['samples']['data_floor']['energy_distance'] < m['samples']['untrained']['energy_distance'], m['samples']


def test_default_folder_is_dated_under_demo_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = demo_main(capsys, '--steps', '2')
    folder = folder_of(out)
    assert code == 0 and folder.parent == Path('demo-results') and (tmp_path / folder / 'metrics.json').exists(), (out, err)


@pytest.mark.parametrize('method, sampler', [('cd', 'mala'), ('pcd', 'hmc')])
def test_other_methods_and_samplers_run(tmp_path, capsys, method, sampler):
    code, out, err = demo_main(capsys, '--dataset', 'two-moons', '--method', method, '--sampler', sampler, '--steps', '3',
                               '--out-dir', str(tmp_path))
    m = json.loads((tmp_path / 'metrics.json').read_text())
    assert code == 0 and (m['dataset'], m['method'], m['sampler'], m['steps_done']) == ('two-moons', method, sampler, 3), err


BAD_VALUES = {   # name: (arguments, the option named, words the message must hold)
    'unknown dataset': (['--dataset', 'mnist'], '--dataset', ["invalid choice: 'mnist'", 'eight-gaussians', 'digits']),
    'unknown method': (['--method', 'score'], '--method', ["invalid choice: 'score'", 'pcd', 'cd']),
    'unknown sampler': (['--sampler', 'nuts'], '--sampler', ["invalid choice: 'nuts'", 'langevin', 'mala', 'hmc']),
    'digits without langevin': (['--dataset', 'digits', '--sampler', 'hmc'], 'sampler', ["'hmc'", 'langevin']),
    'zero steps': (['--steps', '0'], '--steps', ['≥ 1']),
    'steps not an int': (['--steps', 'many'], '--steps', ["invalid int value: 'many'"]),
    'negative seed': (['--seed', '-3'], 'seed', ['-3']),
    'unknown device': (['--device', 'gpu'], 'device', ["'gpu'"]),
    'chains without sample': (['--chains', '8'], '--chains', ['--method sample']),
}


@pytest.mark.parametrize('case', list(BAD_VALUES))
def test_bad_values_exit_2_before_any_work(case, tmp_path, capsys, monkeypatch):
    args, option, words = BAD_VALUES[case]
    built = []
    monkeypatch.setattr(cli, '_build_recipe', lambda *a, **k: built.append(a) or pytest.fail('a model was built'))
    with pytest.raises(SystemExit) as e: cli.main(['demo', *args, '--out-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith('usage: '), err
    for w in [option, *words]: assert w in err, (w, err)
    assert built == [] and not (tmp_path / 'out').exists()


def test_unwritable_folder_exits_1_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / 'a-file').write_text('')
    built = []
    monkeypatch.setattr(cli, '_build_recipe', lambda *a, **k: built.append(a) or pytest.fail('a model was built'))
    code, out, err = demo_main(capsys, '--out-dir', str(tmp_path / 'a-file' / 'run'))
    assert code == 1 and built == [], (out, err)
    assert err.startswith(f"torchebm-nb demo: cannot write to the output folder '{tmp_path / 'a-file' / 'run'}'"), err


def test_ctrl_c_saves_what_exists_and_exits_130(tmp_path, capsys, monkeypatch):
    real, calls = BaseTrainer.train_step, []
    def interrupted_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 12: raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    monkeypatch.setattr(BaseTrainer, 'train_step', interrupted_step)
    code, out, err = demo_main(capsys, '--steps', '50', '--out-dir', str(tmp_path))
    assert code == 130 and 'interrupted after 12 of 50 steps' in err, (out, err)
    m = json.loads((tmp_path / 'metrics.json').read_text())
    assert (m['interrupted'], m['steps'], m['steps_done'], len(m['loss_every_10_steps'])) == (True, 50, 12, 1), m
    assert 'samples' not in m and (tmp_path / 'figure.png').exists(), m   # no metrics of a model half-trained; the figure so far


def test_seeded_runs_are_reproducible(tmp_path, capsys):
    numbers = []
    for run_dir, seed in [('a', '3'), ('b', '3'), ('c', '4')]:
        code, _, err = demo_main(capsys, '--steps', '12', '--seed', seed, '--out-dir', str(tmp_path / run_dir))
        assert code == 0, err
        m = json.loads((tmp_path / run_dir / 'metrics.json').read_text())
        numbers.append((m['loss_every_10_steps'], m['samples']))
    assert numbers[0] == numbers[1] and numbers[0] != numbers[2]


def test_digits_at_tiny_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, '_evaluate_images', fast_image_evaluation(cli._evaluate_images))
    code, out, err = demo_main(capsys, '--dataset', 'digits', '--steps', '2', '--out-dir', str(tmp_path))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.json', 'samples.png']
    m = json.loads((tmp_path / 'metrics.json').read_text())
    assert (m['dataset'], m['method'], m['sampler'], m['steps_done']) == ('digits', 'pcd', 'langevin', 2), m
    assert set(m['samples']) == {'trained', 'untrained', 'replay_buffer', 'data_floor', 'classifier_accuracy'}, m['samples']
    assert all(m['samples'][k]['frechet_classifier_distance'] >= 0 for k in ('trained', 'untrained', 'replay_buffer', 'data_floor'))


def fast_image_evaluation(real):
    "The digits evaluation on 64 held-out images (the classifier and the chains are the slow part)."
    return lambda samplers, train, test, buffer, seed: real(samplers, (train[0][:256], train[1][:256]), test[:64], buffer, seed)


def test_without_matplotlib_the_metrics_are_still_written(tmp_path):
    r = run(['demo', '--steps', '2', '--out-dir', str(tmp_path)],
            code=NO_MATPLOTLIB + 'from torchebm_nb.cli import main; raise SystemExit(main(sys.argv[1:]))')
    assert r.returncode == 0, r.stderr
    assert 'matplotlib is not installed: no figure' in r.stdout and 'pip install "torchebm_nb[plot]"' in r.stdout, r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.json'], list(tmp_path.iterdir())
