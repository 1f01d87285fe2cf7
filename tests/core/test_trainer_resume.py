"""Resuming is bit-identical from every point a user can save at (issue 14): after every micro-batch — in the middle of
a gradient-accumulation group (grad_accum_steps=2 and 3) and of an epoch — and at every epoch's end, for a seeded PCD
run with an EMA. Each checkpoint is loaded into freshly built objects and trained to the end with the same batches
(the trainer skips the batches of the interrupted epoch it has already seen); weights, optimiser state, replay buffer,
EMA, generator and history must equal the straight run's (`torch.equal` / `==`)."""
import warnings

import pytest
import torch
from torch import nn

from torchebm_nb.core import BaseModel, ContrastiveDivergenceTrainer
from torchebm_nb.samplers import LangevinDynamics

EPOCHS, BATCHES = 3, 5


class Small(BaseModel):
    def __init__(self):
        super().__init__(); torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))
    def forward(self, x): return self.net(x).squeeze(-1)


def make(grad_accum_steps, callbacks=()):
    "Freshly built objects, the same every time."
    model = Small()
    return ContrastiveDivergenceTrainer(model, LangevinDynamics(model, step_size=0.01, noise_scale=0.1), learning_rate=1e-2,
                                        k_steps=3, persistent=True, buffer_size=40, device='cpu', ema_decay=0.9, generator=11,
                                        progress=False, grad_accum_steps=grad_accum_steps, callbacks=list(callbacks))


def batches():
    g = torch.Generator().manual_seed(5)
    return [torch.randn(8, 2, generator=g) for _ in range(BATCHES)]


class SaveEverywhere:
    "A checkpoint after every micro-batch and at every epoch's end."
    def __init__(self, folder): self.folder, self.paths = folder, []
    def _save(self, trainer, name):
        path = self.folder / f'{name}.pt'
        trainer.save_checkpoint(path)
        self.paths.append(path)
    def on_batch_end(self, trainer, i, metrics): self._save(trainer, f'epoch{trainer.epoch}_batch{i}')
    def on_epoch_end(self, trainer, epoch, metrics): self._save(trainer, f'end_of_epoch{epoch}')


def assert_same_run(a, b):
    "Two trainers hold bit-identical states."
    for x, y in zip(a.model.parameters(), b.model.parameters()): assert torch.equal(x, y)
    for x, y in zip(a.ema.module.parameters(), b.ema.module.parameters()): assert torch.equal(x, y)
    sa, sb = a.optimizer.state_dict()['state'], b.optimizer.state_dict()['state']
    assert sorted(sa) == sorted(sb)
    for k in sa:
        for name in sa[k]: assert torch.equal(torch.as_tensor(sa[k][name]), torch.as_tensor(sb[k][name])), (k, name)
    assert torch.equal(a.loss_fn.replay_buffer, b.loss_fn.replay_buffer) and torch.equal(a.loss_fn.buffer_ptr, b.loss_fn.buffer_ptr)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert (a.global_step, a.epoch, a.pending_micro_batches) == (b.global_step, b.epoch, b.pending_micro_batches)


@pytest.fixture(scope='module', params=[2, 3], ids=lambda k: f'grad_accum_steps={k}')
def straight(request, tmp_path_factory):
    "The straight run, saving everywhere on its way."
    saver = SaveEverywhere(tmp_path_factory.mktemp(f'accum{request.param}'))
    trainer = make(request.param, [saver])
    history = trainer.train(batches(), EPOCHS)
    return request.param, trainer, history, saver.paths


def test_there_is_a_checkpoint_at_every_point(straight):
    accum, _, _, paths = straight
    assert len(paths) == EPOCHS * (BATCHES + 1)
    mid_group = [p for p in paths if torch.load(p, weights_only=False)['micro']]
    assert mid_group, 'some checkpoints must fall inside an accumulation group'
    assert all(torch.load(p, weights_only=False)['grads'][0] is not None for p in mid_group)


@pytest.mark.parametrize('index', range(EPOCHS * (BATCHES + 1)))
def test_resuming_from_every_point_is_bit_identical(straight, index):
    accum, reference, history, paths = straight
    resumed = make(accum)
    resumed.load_checkpoint(paths[index])
    start = resumed.epoch
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        rest = resumed.train(batches(), EPOCHS - start) if start < EPOCHS else {k: [] for k in history}
    assert_same_run(reference, resumed)
    assert set(rest) == set(history)
    for k in history: assert rest[k] == history[k][start:], (k, rest[k], history[k][start:])


def test_a_file_without_the_new_keys_still_loads(straight, tmp_path):
    accum, reference, history, paths = straight
    end_of_first = next(p for p in paths if p.name == 'end_of_epoch0.pt')
    mid_group = next(p for p in paths if torch.load(p, weights_only=False)['micro'])
    for path, warns in ((end_of_first, False), (mid_group, True)):
        state = torch.load(path, weights_only=False)
        state.pop('grads', None); state.pop('progress', None)
        old = tmp_path / path.name
        torch.save(state, old)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            make(accum).load_checkpoint(old)
        lost = [str(w.message) for w in caught if 'without their gradients' in str(w.message)]
        assert bool(lost) == warns, lost
    resumed = make(accum)
    resumed.load_checkpoint(tmp_path / end_of_first.name)   # at an epoch's end nothing was lost: still exact
    resumed.train(batches(), EPOCHS - 1)
    assert_same_run(reference, resumed)


def test_gradients_that_do_not_fit_name_the_file(straight, tmp_path):
    accum, _, _, paths = straight
    mid_group = next(p for p in paths if torch.load(p, weights_only=False)['micro'])
    for change, words in ((lambda g: g[:-1], "its 'grads' entry holds"), (lambda g: [torch.zeros(3)] + g[1:], "its 'grads' entry 0 has shape")):
        state = torch.load(mid_group, weights_only=False)
        state['grads'] = change(state['grads'])
        bad = tmp_path / 'bad.pt'
        torch.save(state, bad)
        with pytest.raises(ValueError) as caught:
            make(accum).load_checkpoint(bad)
        assert str(caught.value).startswith(repr(str(bad))) and words in str(caught.value), caught.value


def test_a_shorter_dataloader_after_a_mid_epoch_checkpoint_is_refused(straight):
    accum, _, _, paths = straight
    path = next(p for p in paths if p.name == 'epoch1_batch3.pt')
    resumed = make(accum)
    resumed.load_checkpoint(path)
    with pytest.raises(ValueError, match='dataloader yielded 2 batches, but this epoch was resumed after batch 4'):
        resumed.train(batches()[:2], 1)
