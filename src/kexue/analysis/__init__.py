"""The analysis articles of kexue.fm as tools (one file per tool).

* :mod:`~kexue.analysis.entropy` — entropy normalization ``p^γ/Σp^γ`` with Newton's iteration and a fixed-entropy
  logits warper (https://kexue.fm/archives/8829); :mod:`~kexue.analysis.entropy_processor` holds its
  ``transformers`` ``LogitsProcessor`` (imported on demand: transformers is slow to import).
"""

from kexue.analysis.entropy import EntropyWarper, entropy, entropy_normalize, entropy_normalize_logits

__all__ = ["EntropyWarper", "entropy", "entropy_normalize", "entropy_normalize_logits"]
