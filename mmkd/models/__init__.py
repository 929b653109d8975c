"""Distillers (student + frozen teacher wrappers) and ReviewKD connectors."""
from .backbones import MobileNetV1
from .base_distiller import BaseDistiller, build_model, load_teacher_checkpoint
from .classification_distiller import ClassificationDistiller
from .default_init_conv import DefaultInitConv2d
from .dense_distiller import DenseDistiller
from .detection_distiller import DetectionDistiller
from .query_distiller import QueryDistiller
from .reviewkd import ABF, ABFConnector
from .segmentation_distiller import SegmentationDistiller

__all__ = ['BaseDistiller', 'DetectionDistiller', 'ABF', 'ABFConnector', 'build_model',
           'load_teacher_checkpoint', 'SegmentationDistiller', 'ClassificationDistiller',
           'MobileNetV1', 'DenseDistiller', 'DefaultInitConv2d',
           'QueryDistiller']
