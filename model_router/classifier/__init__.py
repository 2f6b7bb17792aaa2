"""Query classifier: use case, language, complexity and modality of a request, with confidences."""
from .classifier import ATTACHMENT_KINDS, COMPLEXITIES, LANGUAGES, USE_CASES, Classification, QueryClassifier

__all__ = ["QueryClassifier", "Classification", "USE_CASES", "LANGUAGES", "COMPLEXITIES", "ATTACHMENT_KINDS"]
