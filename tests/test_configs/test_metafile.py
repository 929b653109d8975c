"""model-index.yml and configs/*/metafile.yml: OpenMMLab's format, every
method config listed once, and every teacher checkpoint one the host library's
own metafiles list for that architecture. Offline: the host libraries' model
indexes ship inside their installed packages (``<package>/.mim/``)."""
import glob
import os.path as osp
import re
from functools import lru_cache
from importlib import import_module
from typing import Dict, List, Optional, Tuple

import pytest
import yaml
from mmengine.config import Config

from tests.helpers import REPO

HOSTS = ('mmdet', 'mmseg', 'mmpretrain')
# The host metafile metric a teacher's score is quoted in, per training data.
METRICS = {'COCO': 'box AP', 'Cityscapes': 'mIoU', 'ImageNet-1k': 'Top 1 Accuracy'}
# The keys that fix a model's architecture (what its weights must fit); the
# subtrees that do not (initialisation, losses, train/test settings).
ARCH_KEYS = ('type', 'depth', 'style', 'num_classes', 'groups', 'base_width', 'num_stages',
             'in_channels', 'out_channels', 'strides', 'dilations', 'num_outs')
SKIP = ('init_cfg', 'train_cfg', 'test_cfg', 'data_preprocessor', 'loss_cls', 'loss_bbox',
        'loss_mask', 'loss_decode', 'loss', 'pretrained')


def load_yaml(path: str):
    with open(path) as f:
        return yaml.safe_load(f)


def models() -> List[dict]:
    """Every Model of mmkd's index, with the collections it may name."""
    index = load_yaml(osp.join(REPO, 'model-index.yml'))
    found = []
    for rel in index['Import']:
        found.extend(load_yaml(osp.join(REPO, rel))['Models'])
    return found


def collections() -> Dict[str, dict]:
    index = load_yaml(osp.join(REPO, 'model-index.yml'))
    return {c['Name']: c for rel in index['Import']
            for c in load_yaml(osp.join(REPO, rel))['Collections']}


def method_configs() -> List[str]:
    """Every config a user trains: configs/<method>/*.py, demos and bases left out."""
    paths = glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    return sorted(osp.relpath(p, REPO) for p in paths
                  if not re.match(r'(demo|_base_)', osp.basename(osp.dirname(p))))


@lru_cache(maxsize=None)
def load_config(rel: str) -> Config:
    return Config.fromfile(osp.join(REPO, rel))


def test_index_imports_one_metafile_per_method():
    index = load_yaml(osp.join(REPO, 'model-index.yml'))
    methods = sorted({p.split('/')[1] for p in method_configs()})
    assert sorted(index['Import']) == sorted(f'configs/{m}/metafile.yml' for m in methods)


def test_every_method_config_listed_exactly_once():
    listed = [m['Config'] for m in models()]
    assert sorted(listed) == method_configs()
    names = [m['Name'] for m in models()]
    assert len(names) == len(set(names))


def test_collections_have_paper_code_and_readme():
    for name, coll in collections().items():
        assert coll['Paper']['URL'].startswith('https://arxiv.org/'), name
        assert coll['Paper']['Title'], name
        assert osp.isfile(osp.join(REPO, coll['README'])), name
        # ESKD's authors published no code; every other method links its own
        assert coll.get('Code', {}).get('URL', '').startswith('https://github.com/') or \
            coll['Metadata'].get('Official Code') == 'none published', name
        assert osp.isfile(osp.join(REPO, coll['Metadata']['Implementation'])), name


@pytest.mark.parametrize('model', models(), ids=lambda m: m['Name'])
def test_model_entry_matches_its_config(model):
    assert model['In Collection'] in collections()
    cfg = load_config(model['Config'])
    meta = model['Metadata']
    gpus = int(re.fullmatch(r'(\d+)x GPUs', meta['Training Resources']).group(1))
    assert meta['Batch Size'] == gpus * cfg.train_dataloader.batch_size
    if 'Epochs' in meta:
        assert meta['Epochs'] == cfg.train_cfg.max_epochs
    else:
        assert meta['Iterations'] == cfg.train_cfg.max_iters
    assert meta['Training Data'] in METRICS
    # Published numbers are labelled as such. A result of ours (and weights)
    # only with the run's log (docs/reproduce.md, "Report a result").
    ours = meta['Our Result']
    trained = ours != 'not yet trained'
    assert not trained or re.search(r'\[log\]\(https?://', ours), model['Name']
    for result in model.get('Results', []):
        paper = [k for k in result['Metrics'] if k.endswith('(paper)')]
        assert trained or len(paper) == len(result['Metrics']), model['Name']
        if paper:
            assert meta['Paper Result Source'], model['Name']
    assert trained or 'Weights' not in model, model['Name']


@lru_cache(maxsize=None)
def host_metafiles() -> Tuple[Tuple[str, str, str, str], ...]:
    """(host package, its .mim folder, metafile path, text) of every host metafile."""
    found = []
    for host in HOSTS:
        root = osp.join(osp.dirname(import_module(host).__file__), '.mim')
        for rel in load_yaml(osp.join(root, 'model-index.yml'))['Import']:
            path = osp.join(root, rel)
            if osp.isfile(path):  # an index may name a file its wheel lacks
                with open(path) as f:
                    found.append((host, root, path, f.read()))
    return tuple(found)


def host_entry(url: str) -> Optional[Tuple[str, str, dict]]:
    """(host package, its .mim folder, model entry) whose Weights is ``url``.

    Only the metafiles whose text holds the URL are parsed: parsing all of
    them costs seconds."""
    for host, root, path, text in host_metafiles():
        if url in text:
            for entry in load_yaml(path).get('Models') or []:
                if entry.get('Weights') == url:
                    return host, root, entry
    return None


def architecture(model: dict, prefix: str = '') -> Dict[str, object]:
    """The architecture-fixing settings of a model dict, by dotted path."""
    found = {}
    for key, value in model.items():
        if key in SKIP:
            continue
        if isinstance(value, dict):
            found.update(architecture(value, f'{prefix}{key}.'))
        elif key in ARCH_KEYS:
            found[prefix + key] = tuple(value) if isinstance(value, list) else value
    return found


def host_score(entry: dict, metric: str) -> Optional[float]:
    results = entry.get('Results')
    for result in results if isinstance(results, list) else [results]:
        if result and metric in result.get('Metrics', {}):
            return float(result['Metrics'][metric])
    return None


def teacher_cases() -> List[Tuple[str, str]]:
    return [(m['Config'], m['Metadata'].get('Teacher', '')) for m in models()]


@pytest.mark.parametrize('rel,teacher_name', teacher_cases(), ids=lambda x: str(x)[-40:])
def test_teacher_checkpoint_is_the_host_zoo_model(rel, teacher_name):
    model = load_config(rel).model
    ckpt = model.get('teacher_ckpt')
    if not isinstance(ckpt, str) or not ckpt.startswith('https://'):
        # PS-KD (no teacher), the ESKD teacher's own training, and the ESKD
        # early teacher, which the README tells the user to train
        assert 'zoo' not in teacher_name, rel
        return
    found = host_entry(ckpt)
    assert found, f'{rel}: {ckpt} is in no host metafile'
    host, root, entry = found
    teacher = model.teacher
    if isinstance(teacher, str):  # 'mmdet::faster_rcnn/....py': the very config
        scope, _, path = teacher.partition('::')
        assert (scope, f'configs/{path}') == (host, entry['Config']), rel
    else:
        host_config = osp.join(root, entry['Config'])
        expected = architecture(Config.fromfile(host_config).model.to_dict())
        got = architecture(teacher.to_dict())
        assert got == expected, f'{rel}: teacher differs from {host_config}'
    # the teacher's score the metafile quotes is the host zoo's
    data = load_yaml_model(rel)['Metadata']['Training Data']
    score = host_score(entry, METRICS[data])
    quoted = re.search(r'zoo, ([\d.]+) ', teacher_name)
    assert quoted and float(quoted.group(1)) == score, (rel, teacher_name, score)


def load_yaml_model(rel: str) -> dict:
    return next(m for m in models() if m['Config'] == rel)


@pytest.mark.parametrize('method', sorted({p.split('/')[1] for p in method_configs()}))
def test_method_page_links_every_config(method):
    """configs/<method>/README.md has a results row per config, linking it,
    and every relative link on the page resolves."""
    folder = osp.join(REPO, 'configs', method)
    with open(osp.join(folder, 'README.md')) as f:
        page = f.read()
    for rel in method_configs():
        if rel.split('/')[1] == method:
            name = osp.basename(rel)
            rows = [line for line in page.splitlines()
                    if line.startswith(f'| [{name}](./{name})')]
            assert len(rows) == 1, name
            entry = load_yaml_model(rel)['Metadata']['Our Result']
            assert entry in rows[0], name
    for target in re.findall(r'\]\((\.\.?/[^)#]+)', page):
        assert osp.exists(osp.normpath(osp.join(folder, target))), target
