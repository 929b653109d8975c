"""A toy host model and a toy task distiller: what the base distiller owns,
tested without a host library's heads (CPU, milliseconds)."""
from typing import Any, Dict

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from mmkd.models import BaseDistiller


class ToyClassifier(BaseModel):
    """``inputs`` (N, 4) -> ReLU(Linear) -> Linear head -> (N, classes)
    logits; ``data_samples`` are the (N,) labels. Counts its forwards."""

    def __init__(self, width: int = 8, classes: int = 5) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, width)
        self.head = nn.Linear(width, classes)
        self.forwards = 0

    def features(self, inputs):
        self.forwards += 1
        return torch.relu(self.backbone(inputs))

    def loss(self, inputs, data_samples):
        return dict(loss_cls=F.cross_entropy(self.head(self.features(inputs)), data_samples))

    def predict(self, inputs, data_samples=None):
        return self.head(self.features(inputs)).argmax(1)

    def _forward(self, inputs, data_samples=None):
        return self.head(self.features(inputs))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.predict(inputs) if mode == 'predict' else self._forward(inputs)


class ToyDistiller(BaseDistiller):
    """Distils the toy head's logits; records whether the teacher ran with
    grad enabled."""

    scope = 'mmpretrain'

    def __init__(self, *args, **kwargs) -> None:
        self.teacher_grad_enabled = []
        super().__init__(*args, **kwargs)

    def capture_points(self):
        return {'head': (self.student.head, 'forward')}

    def read_student(self, calls, inputs, data_samples) -> Dict[str, Any]:
        return dict(logits=calls.only('head').output)

    def teacher_forward(self, inputs, student) -> Dict[str, Any]:
        self.teacher_grad_enabled.append(torch.is_grad_enabled())
        return dict(logits=self.teacher.head(self.teacher.features(inputs)))

    def distill_terms(self, student, teacher, data_samples):
        out = self.distill(student['logits'], teacher['logits'], data_samples)
        out['kd_agreement'] = self.agreement(student['logits'], teacher['logits'])
        return out


def toy_batch(n: int = 6, classes: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=gen), torch.randint(0, classes, (n, ), generator=gen)
