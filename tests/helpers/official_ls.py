"""The logit-standardization authors' KD and DKD losses, run from a fetched
copy of github.com/sunshangquan/logit-standardization-KD.

Their ``mdistiller/distillers/KD.py`` and ``DKD.py`` are executed unchanged
(nothing is vendored). Both start with ``from ._base import Distiller``, a
class their loss functions never use; it is satisfied by a stand-in package
holding an empty ``Distiller``, so no other file of theirs (nor their
dependencies) has to load. Absent copy: the calling test is skipped with a
message saying where :mod:`tests.helpers.official` looked.
"""
import sys
import types

import pytest

from tests.helpers.official import OFFICIAL_DIR, official_source

REPO = 'sunshangquan/logit-standardization-KD'
#: A package name of our own for the stand-in, so nothing real is shadowed.
_PACKAGE = 'official_logit_standardization_distillers'


def _stand_in_package() -> None:
    """Register the stand-in ``<package>`` and ``<package>._base`` modules."""
    if _PACKAGE in sys.modules:
        return
    package = types.ModuleType(_PACKAGE)
    package.__path__ = []
    base = types.ModuleType(f'{_PACKAGE}._base')
    base.Distiller = type('Distiller', (), {})
    sys.modules[_PACKAGE] = package
    sys.modules[f'{_PACKAGE}._base'] = base


def official_distiller_module(name: str) -> types.ModuleType:
    """Their ``mdistiller/distillers/<name>.py`` (``'KD'`` or ``'DKD'``) as
    a module, or skip the calling test."""
    path = f'mdistiller/distillers/{name}.py'
    source = official_source(REPO, path)
    if source is None:
        pytest.skip(f'official code absent: no fetched copy of github.com/{REPO} holding {path} '
                    f'under {OFFICIAL_DIR} (set MMKD_OFFICIAL_DIR to a directory with '
                    f'{REPO.replace("/", "+")}/repo in it)')
    _stand_in_package()
    module = types.ModuleType(f'{_PACKAGE}.{name}')
    module.__package__ = _PACKAGE
    module.__file__ = f'{REPO}:{path}'
    exec(compile(source, module.__file__, 'exec'), module.__dict__)
    return module


def official_kd_loss():
    """``kd_loss(logits_student, logits_teacher, temperature, logit_stand)``."""
    return official_distiller_module('KD').kd_loss


def official_dkd_loss():
    """``dkd_loss(logits_student, logits_teacher, target, alpha, beta,
    temperature, logit_stand)``."""
    return official_distiller_module('DKD').dkd_loss
