"Tests of the benchmark suite `torchebm_nb.bench` (nbs/85_bench.ipynb): the --quick run, discovery, CLI errors."
import inspect, json, time

import pytest
import torch

import torchebm_nb.samplers as S
from torchebm_nb.bench import discover, main, SKIP, FAMILIES
from torchebm_nb.core import BaseSampler


def test_discovery_finds_every_exported_sampler():
    exported = {n for n in S.__all__ if inspect.isclass(getattr(S, n)) and issubclass(getattr(S, n), BaseSampler)}
    assert exported  # the package does export samplers
    found = [c for c in discover() if c['family'] == 'samplers']
    assert {c['cls'] for c in found} == {getattr(S, n) for n in exported}
    assert len({c['cls'] for c in found}) == len(found)   # an alias (MALA) is benchmarked once, under its full name
    found = {c['name'] for c in found}
    assert 'MetropolisAdjustedLangevin' in found and 'MALA' not in found
    assert 'PredictionType' not in found  # an Enum, not a sampler


def test_discovery_covers_every_family():
    fams = {c['family'] for c in discover()}
    assert fams == set(FAMILIES)


def test_quick_run_records_every_component(tmp_path):
    out = tmp_path / 'r' / 'bench.json'
    t0 = time.perf_counter()
    rc = main(['--quick', '--device', 'cpu', '--out', str(out)])
    assert time.perf_counter() - t0 < 60
    report = json.loads(out.read_text())
    assert rc == 0, [r for r in report['results'] if r['status'] == 'error']
    meta = report['meta']
    for k in ['device', 'torch', 'date', 'command', 'memory_method', 'sizes']: assert meta[k]
    assert meta['torch'] == torch.__version__ and meta['scale'] == 'quick'
    by_name = {(r['family'], r['name']): r for r in report['results']}
    for c in discover():
        r = by_name[(c['family'], c['name'])]
        if r['status'] == 'skipped': assert r['reason'] == SKIP[c['name']] and r['reason']
        else:
            assert r['status'] == 'ok'
            assert r['time_s'] > 0 and r['throughput'] > 0 and r['peak_mem_bytes'] >= 0
    for r in report['results']:
        if r['family'] == 'samplers' and r['status'] == 'ok':
            assert 'acceptance' in r and 'ess_per_s' in r
            assert (r['ess_per_s'] is not None) != (r['ess_note'] is not None)
    assert by_name[('samplers', 'HamiltonianMonteCarlo')]['acceptance'] is not None
    assert out.with_suffix('.png').exists()


@pytest.mark.parametrize('argv', [
    ['--scale', 'huge'],
    ['--device', 'tpu'],
    ['--device', 'not-a-device'],
    ['--repeats', '0'],
    ['--repeats', 'x'],
    ['--only', 'no-such-component-xyz'],
    ['--bogus'],
])
def test_cli_errors(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main(argv + ['--out', str(tmp_path / 'b.json')])
    assert e.value.code == 2
    assert 'error' in capsys.readouterr().err
    assert not (tmp_path / 'b.json').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error when CUDA is absent')
def test_cli_cuda_unavailable(tmp_path):
    with pytest.raises(SystemExit) as e: main(['--device', 'cuda', '--out', str(tmp_path / 'b.json')])
    assert e.value.code == 2


def test_only_filters(tmp_path):
    out = tmp_path / 'b.json'
    assert main(['--quick', '--device', 'cpu', '--only', 'samplers.hamilton', '--no-plot', '--out', str(out)]) == 0
    names = [r['name'] for r in json.loads(out.read_text())['results']]
    assert names == ['HamiltonianMonteCarlo'] and not out.with_suffix('.png').exists()
