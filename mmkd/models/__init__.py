"""Distillers (student + frozen teacher wrappers) and ReviewKD connectors."""
from .base_distiller import BaseDistiller, build_model, load_teacher_checkpoint
from .detection_distiller import DetectionDistiller
from .reviewkd import ABF, ABFConnector

__all__ = ['BaseDistiller', 'DetectionDistiller', 'ABF', 'ABFConnector', 'build_model',
           'load_teacher_checkpoint']
