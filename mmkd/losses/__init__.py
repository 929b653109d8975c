from .base import LogitLoss
from .hcl import HCLLoss, hcl_level
from .dist import DISTLoss, dist_loss, dist_loss_parts, dist_terms
from .dkd import DKDLoss, dkd_loss, dkd_loss_parts, dkd_rows
from .kd import KDLoss, kd_loss, kd_rows
from .mimic import FPNMimicLoss
from .utils import to_rows

__all__ = [
    'LogitLoss', 'KDLoss', 'DKDLoss', 'DISTLoss', 'HCLLoss', 'FPNMimicLoss', 'hcl_level',
    'kd_loss', 'kd_rows', 'dkd_loss', 'dkd_loss_parts', 'dkd_rows', 'dist_loss',
    'dist_loss_parts', 'dist_terms', 'to_rows'
]
