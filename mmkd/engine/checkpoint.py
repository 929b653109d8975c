"""Former home of :mod:`mmkd.checkpoint` (moved below the models so that
they can load teachers without importing the engine layer). Kept so that
``from mmkd.engine.checkpoint import ...`` in user code keeps working."""
from mmkd.checkpoint import (ALLOWED_GLOBALS, TRUST_ENV, UntrustedCheckpointError,  # noqa: F401
                             load_checkpoint_file, load_http_checkpoint, load_local_checkpoint,
                             load_url_checkpoint, route_mmengine_loaders, trust_checkpoints)
