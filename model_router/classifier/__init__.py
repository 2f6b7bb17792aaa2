"""Query classifier: use case, language, complexity and modality of a request, with confidences.

Inference only; fitting lives in classifier.training (used by scripts/train_classifier.py).
"""
from .classifier import Classification, QueryClassifier

__all__ = ["QueryClassifier", "Classification"]
