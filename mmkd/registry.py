"""mmkd's registries.

Children of MMEngine's root registries with scope ``mmkd``: after
``custom_imports=dict(imports=['mmkd'])`` an mmdet, mmseg or mmpretrain config
can name ``type='mmkd.DKDLoss'`` and the builder finds it here, and mmkd's own
models can build ``mmdet.*`` / ``mmseg.*`` / ``mmpretrain.*`` parts by scope.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmkd', locations=['mmkd.losses', 'mmkd.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.engine'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='mmkd',
                          locations=['mmkd.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmkd',
                          locations=['mmkd.engine'])
