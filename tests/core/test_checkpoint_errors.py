"""Checkpoint files that cannot be restored, and devices this machine lacks: one clear error naming the file or the argument.

Table-driven over both loaders (`utils.load_checkpoint` and `BaseTrainer.load_checkpoint`) and every way a file goes
wrong: truncated, garbage, empty, not a dict, entries missing, weights that do not fit. The loaded model must be left
as it was when the file itself is bad."""
import os

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseTrainer
from torchebm_nb.core.base_module import read_checkpoint, resolve_device
from torchebm_nb.datasets import EightGaussiansDataset, TwoMoonsDataset
from torchebm_nb.utils import load_checkpoint, save_checkpoint


def _trainer(width=2):
    model = nn.Linear(width, 1)
    loss = lambda x, **kw: model(x).pow(2).mean()
    return BaseTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss, device='cpu', progress=False)


def _utils_file(tmp_path):
    model = nn.Linear(2, 1)
    return save_checkpoint(model, torch.optim.SGD(model.parameters(), lr=0.1), 3, str(tmp_path))


def _trainer_file(tmp_path):
    path = tmp_path / 'trainer.pt'
    _trainer().save_checkpoint(path)
    return str(path)


def _utils_load(path):
    model = nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    try: load_checkpoint(path, model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    finally: after = [p.detach().clone() for p in model.parameters()]
    return before, after


def _trainer_load(path):
    trainer = _trainer()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    try: trainer.load_checkpoint(path)
    finally: after = [p.detach().clone() for p in trainer.model.parameters()]
    return before, after


LOADERS = {'utils.load_checkpoint': (_utils_file, _utils_load, 'checkpoint_path', ['model']),
           'BaseTrainer.load_checkpoint': (_trainer_file, _trainer_load, 'path', ['model', 'optimizer', 'generator'])}


def _truncate(path):
    data = open(path, 'rb').read(); open(path, 'wb').write(data[:len(data) // 2])

def _garbage(path): open(path, 'wb').write(b'\x00\x01 this is not a checkpoint ' * 20)
def _empty(path): open(path, 'wb').close()
def _a_list(path): torch.save([1, 2, 3], path)

CORRUPTIONS = {'truncated': (_truncate, 'cannot be read as a checkpoint'),
               'garbage': (_garbage, 'cannot be read as a checkpoint'),
               'empty': (_empty, 'cannot be read as a checkpoint'),
               'a list': (_a_list, 'holds a list, not the dict')}


@pytest.mark.parametrize('corruption', list(CORRUPTIONS))
@pytest.mark.parametrize('loader', list(LOADERS))
def test_unreadable_files_name_the_file(tmp_path, loader, corruption):
    make, load, name, _ = LOADERS[loader]
    spoil, expected = CORRUPTIONS[corruption]
    path = make(tmp_path)
    spoil(path)
    with pytest.raises(ValueError) as error:
        before, after = load(path)
    assert f"{name}={path!r}" in str(error.value) and expected in str(error.value), str(error.value)


@pytest.mark.parametrize('loader', list(LOADERS))
def test_missing_entries_are_named_before_anything_changes(tmp_path, loader):
    make, load, name, required = LOADERS[loader]
    for key in required:
        path = make(tmp_path)
        state = torch.load(path, weights_only=False)
        del state[key]
        torch.save(state, path)
        with pytest.raises(ValueError, match=rf"lacks the entries \['{key}'\]") as error:
            load(path)
        assert repr(path) in str(error.value)


@pytest.mark.parametrize('loader', list(LOADERS))
def test_weights_that_do_not_fit_name_the_entry(tmp_path, loader):
    make, load, _, _ = LOADERS[loader]
    path = make(tmp_path)
    state = torch.load(path, weights_only=False)
    state['model'] = nn.Linear(5, 1).state_dict()          # another model's weights
    torch.save(state, path)
    with pytest.raises(ValueError, match="its 'model' entry does not fit this Linear") as error:
        load(path)
    assert repr(path) in str(error.value)


def test_a_good_file_still_loads(tmp_path):
    for loader, (make, load, _, _) in LOADERS.items():
        load(make(tmp_path))                                  # no error
    assert sorted(read_checkpoint(_trainer_file(tmp_path), weights_only=False)) == sorted(
        ['model', 'optimizer', 'loss_fn', 'ema', 'scaler', 'global_step', 'epoch', 'micro', 'generator'])


def test_path_type_and_missing_file(tmp_path):
    with pytest.raises(TypeError, match='path must be a str or os.PathLike; got int'):
        _trainer().load_checkpoint(3)
    with pytest.raises(FileNotFoundError, match='is not a file'):
        _trainer().load_checkpoint(tmp_path / 'nowhere.pt')


ABSENT = [d for d in ('cuda', 'cuda:0', 'cuda:7', 'mps') if (torch.cuda.device_count() <= int(d.split(':')[1]) if ':' in d else
          (not torch.cuda.is_available() if d == 'cuda' else not torch.backends.mps.is_available()))]
MAKERS = {'resolve_device': lambda d: resolve_device(d),
          'TwoMoonsDataset': lambda d: TwoMoonsDataset(n_samples=8, device=d),
          'EightGaussiansDataset': lambda d: EightGaussiansDataset(n_samples=8, device=d),
          'BaseTrainer': lambda d: BaseTrainer(nn.Linear(2, 1), torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
                                               lambda x, **kw: x.sum(), device=d, progress=False)}


@pytest.mark.skipif(not ABSENT, reason='this machine has every device tried')
@pytest.mark.parametrize('maker', list(MAKERS))
@pytest.mark.parametrize('device', ABSENT)
def test_a_device_this_machine_lacks_is_a_value_error_naming_device(maker, device):
    with pytest.raises(ValueError, match=rf"device='{device}'.*but (CUDA|MPS) is not available|this machine has \d+ CUDA"):
        MAKERS[maker](device)
