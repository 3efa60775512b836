"""The analysis articles of kexue.fm as tools (one file per tool).

* :mod:`~kexue.analysis.entropy` — entropy normalization ``p^γ/Σp^γ`` with Newton's iteration and a fixed-entropy
  logits warper (https://kexue.fm/archives/8829); :mod:`~kexue.analysis.entropy_processor` holds its
  ``transformers`` ``LogitsProcessor`` (imported on demand: transformers is slow to import).
* :mod:`~kexue.analysis.leaderboard` — AM/GM/HM leaderboard means over one checked task set, ranks, Kendall τ,
  decimal-comma parsing (https://kexue.fm/archives/8783).
"""

from kexue.analysis.entropy import EntropyWarper, entropy, entropy_normalize, entropy_normalize_logits
from kexue.analysis.leaderboard import LeaderboardMeans, TaskSetMismatch, leaderboard_means, read_leaderboard

__all__ = ["EntropyWarper", "LeaderboardMeans", "TaskSetMismatch", "entropy", "entropy_normalize",
           "entropy_normalize_logits", "leaderboard_means", "read_leaderboard"]
