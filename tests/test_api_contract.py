"""Check the exported API against the contract in ../shared/API_SIGNATURES.md (TorchEBM 0.8.9's signatures).

For every class or function the contract lists and the package already exports: the parameter names, their order
and kind (positional / keyword-only / *args / **kwargs) and their defaults must match; so must the signatures of
the public methods the contract lists. Names not built yet are reported by `test_contract_coverage_report`
(never a failure: issues add them). Annotations are not compared (their spelling differs between Python versions).

Two narrow exceptions: where the contract lists a method named `sample`, the trailing keyword-only parameters named in
`EXTRA_SAMPLE_KEYWORDS` (issue 18's `progress=False`), and where it lists a class's constructor, those named in
`EXTRA_INIT_KEYWORDS` (issue 19's `compile=False`), with exactly the default given there, may follow the contract's
parameters. They are accepted only there, only keyword-only, only with that default, and only when the contract
does not list the name itself; everything else stays strict.
"""
import enum
import importlib
import inspect
import math
import re
from pathlib import Path

import pytest
import torch

CONTRACT = Path(__file__).resolve().parents[1].parent / 'shared' / 'API_SIGNATURES.md'
pytestmark = pytest.mark.skipif(not CONTRACT.exists(), reason='../shared/API_SIGNATURES.md is not beside the checkout')


def split_top(text, sep=','):
    """Split at `sep` outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, ''
    for ch in text:
        if quote:
            cur += ch
            if ch == quote: quote = None
            continue
        if ch in '\'"': quote = ch
        elif ch in '([{': depth += 1
        elif ch in ')]}': depth -= 1
        if ch == sep and depth == 0: parts.append(cur.strip()); cur = ''
        else: cur += ch
    if cur.strip(): parts.append(cur.strip())
    return parts


def parse_params(sig):
    """'(a: int = 1, *args, b=2, **kw) -> X' -> [(name, kind, default-string-or-None)]."""
    body = sig.strip()
    body = body[1:body.rindex(')')] if '->' not in body else body[1:body.rindex(')', 0, body.index('->'))]
    out, kw_only = [], False
    for piece in split_top(body):
        if piece == '/': continue
        if piece == '*': kw_only = True; continue
        if piece.startswith('**'): out.append((piece[2:].split(':')[0].strip(), 'VAR_KEYWORD', None)); continue
        if piece.startswith('*'): out.append((piece[1:].split(':')[0].strip(), 'VAR_POSITIONAL', None)); kw_only = True; continue
        default = None
        head = piece
        eq = split_top(piece, '=')
        if len(eq) > 1: head, default = eq[0], '='.join(eq[1:]).strip()
        name = head.split(':')[0].strip()
        out.append((name, 'KEYWORD_ONLY' if kw_only else 'POSITIONAL_OR_KEYWORD', default))
    return out


def parse_contract():
    entries, module, current = [], None, None
    for line in CONTRACT.read_text(encoding='utf-8').splitlines():
        m = re.match(r'^## (torchebm_nb[\w.]*)', line)
        if m: module = m.group(1); current = None; continue
        m = re.match(r'^- class `(\w+)(?:\([^`]*\))?` `(.*)`\s*$', line)
        if m and module:
            current = dict(module=module, kind='class', name=m.group(1), sig=m.group(2), methods=[])
            entries.append(current); continue
        m = re.match(r'^- function `(\w+)(\(.*)`\s*$', line)
        if m and module:
            current = dict(module=module, kind='function', name=m.group(1), sig=m.group(2), methods=[])
            entries.append(current); continue
        m = re.match(r'^  - `(\w+)(\(.*\).*)`\s*$', line)
        if m and current: current['methods'].append((m.group(1), m.group(2)))
    return entries


def our_params(obj):
    sig = inspect.signature(obj)
    out = []
    for p in sig.parameters.values():
        if p.name == 'self': continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append((p.name, p.kind.name, default, p.default is not inspect.Parameter.empty))
    return out


def same_default(contract_default, ours, has_default):
    if contract_default is None: return not has_default
    if not has_default: return False
    if contract_default.startswith('<object object'): return True  # a sentinel
    if contract_default.startswith("<class '"):                     # a class default, printed by its short name
        return isinstance(ours, type) and ours.__name__ == contract_default[len("<class '"):-2].rsplit('.', 1)[-1]
    try:
        expected = eval(contract_default, {'torch': torch, 'inf': math.inf, 'device': torch.device, 'float32': torch.float32})
    except Exception:
        return contract_default == repr(ours)
    if isinstance(expected, float) and isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return expected == ours or (math.isnan(expected) and math.isnan(ours))
    return expected == ours and type(expected) is type(ours) or (expected == ours and isinstance(ours, (int, float)))


EXTRA_SAMPLE_KEYWORDS = {'progress': False}   # name -> the only default allowed
EXTRA_INIT_KEYWORDS = {'compile': False}      # the same, for a class's constructor (`what` ends in '.__init__')


def allowed_extras(theirs, ours, what):
    """`ours` without the allowlisted trailing keyword-only extras of a `sample` method or a constructor (see the module docstring)."""
    extras = {'sample': EXTRA_SAMPLE_KEYWORDS, '__init__': EXTRA_INIT_KEYWORDS}.get(what.rsplit('.', 1)[-1])
    if extras is None: return ours
    listed = {t[0] for t in theirs}
    tail = len(ours)
    if tail and ours[-1][1] == 'VAR_KEYWORD': tail -= 1            # extras sit before a trailing **kwargs
    while tail and ours[tail - 1][0] in extras and ours[tail - 1][0] not in listed:
        name, kind, default, has = ours[tail - 1]
        if kind != 'KEYWORD_ONLY' or not has or default is not extras[name]: break
        ours = ours[:tail - 1] + ours[tail:]
        tail -= 1
    return ours


def compare(contract_sig, obj, what):
    theirs, ours = parse_params(contract_sig), our_params(obj)
    ours = allowed_extras(theirs, ours, what)
    if contract_sig.startswith('(/, *args, **kwargs)') and not ours: return []  # no constructor of its own
    problems = []
    names_t, names_o = [t[0] for t in theirs], [o[0] for o in ours]
    if names_t != names_o: return [f"{what}: parameters {names_o} != contract {names_t}"]
    for (n, kind_t, d_t), (_, kind_o, d_o, has) in zip(theirs, ours):
        if kind_t != kind_o: problems.append(f"{what}: {n} is {kind_o}, contract says {kind_t}")
        if not same_default(d_t, d_o, has): problems.append(f"{what}: default of {n} is {d_o!r}, contract says {d_t}")
    return problems


ENTRIES = parse_contract() if CONTRACT.exists() else []


def resolve(entry):
    try: module = importlib.import_module(entry['module'])
    except ImportError: return None
    if entry['name'] not in getattr(module, '__all__', dir(module)): return None
    return getattr(module, entry['name'], None)


@pytest.mark.parametrize('entry', ENTRIES, ids=[f"{e['module']}.{e['name']}" for e in ENTRIES])
def test_signature_matches_contract(entry):
    obj = resolve(entry)
    if obj is None: pytest.skip('not built yet')
    if isinstance(obj, type) and issubclass(obj, enum.Enum):   # Enum's own signature varies with the Python version
        assert len(obj) > 0; return
    problems = compare(entry['sig'], obj, entry['name'] + ('.__init__' if isinstance(obj, type) else ''))
    for method, sig in entry['methods']:
        if not hasattr(obj, method): problems.append(f"{entry['name']}.{method} is missing"); continue
        member = inspect.getattr_static(obj, method)
        if isinstance(member, property): continue
        target = member.__func__ if isinstance(member, classmethod) else getattr(obj, method)  # the contract keeps `cls`
        problems += compare(sig, target, f"{entry['name']}.{method}")
    assert not problems, '\n'.join(problems)


def test_contract_coverage_report(capsys):
    missing = [f"{e['module']}.{e['name']}" for e in ENTRIES if resolve(e) is None]
    built = len(ENTRIES) - len(missing)
    print(f"API contract: {built} of {len(ENTRIES)} names built")
    assert built > 0


def test_sample_extras_are_narrow():
    "Only keyword-only `progress=False` after the contract's parameters of a `sample`: nothing else, nowhere else."
    contract = '(x=None, *, generator=None)'
    def ok(x=None, *, generator=None, progress=False): pass
    def ok_kwargs(x=None, *, generator=None, progress=False, **kwargs): pass
    def wrong_default(x=None, *, generator=None, progress=True): pass
    def positional(x=None, progress=False, *, generator=None): pass
    def other_name(x=None, *, generator=None, verbose=False): pass
    assert compare(contract, ok, 'HMC.sample') == []
    assert compare('(x=None, *, generator=None, **kwargs)', ok_kwargs, 'HMC.sample') == []
    for bad in (wrong_default, positional, other_name): assert compare(contract, bad, 'HMC.sample'), bad.__name__
    assert compare(contract, ok, 'HMC.step'), 'the allowlist holds for sample only'
    assert compare(contract, ok, 'HMC.__init__'), 'progress is not a constructor extra'


def test_init_extras_are_narrow():
    "Only keyword-only `compile=False` after the contract's parameters of a constructor: nothing else, nowhere else."
    contract = '(model, step_size=0.001)'
    def ok(model, step_size=0.001, *, compile=False): pass
    def wrong_default(model, step_size=0.001, *, compile=True): pass
    def positional(model, step_size=0.001, compile=False): pass
    def other_name(model, step_size=0.001, *, jit=False): pass
    assert compare(contract, ok, 'HMC.__init__') == []
    for bad in (wrong_default, positional, other_name): assert compare(contract, bad, 'HMC.__init__'), bad.__name__
    assert compare(contract, ok, 'HMC.sample'), 'compile is not a sample extra'
    assert compare(contract, ok, 'hmc_function'), 'functions get no extras'
