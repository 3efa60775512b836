"""The analysis articles of kexue.fm as tools (one file per tool).

* :mod:`~kexue.analysis.entropy` — entropy normalization ``p^γ/Σp^γ`` with Newton's iteration and a fixed-entropy
  logits warper (https://kexue.fm/archives/8829); :mod:`~kexue.analysis.entropy_processor` holds its
  ``transformers`` ``LogitsProcessor`` (imported on demand: transformers is slow to import).
* :mod:`~kexue.analysis.leaderboard` — AM/GM/HM leaderboard means over one checked task set, ranks, Kendall τ,
  decimal-comma parsing (https://kexue.fm/archives/8783).
* :mod:`~kexue.analysis.simsiam` — SimSiam's toy dynamics in three modes (scipy ``solve_ivp``), conserved quantities,
  limits and the plot (https://kexue.fm/archives/7980); the loss is :class:`kexue.losses.SimSiamLoss`.
* :mod:`~kexue.analysis.gradient_penalty` — both sides of the input/parameter gradient-penalty inequality of an MLP,
  per-layer W- and b-parts, spectral norms in float64 (https://kexue.fm/archives/8796);
  :mod:`~kexue.analysis.gradient_ratio` tracks the two gradient norms over a classifier's checkpoints.
* :mod:`~kexue.analysis.crf_legality` — the row-wise legality predicate of a CRF transition matrix and the synthetic
  BMES experiment of the CRF learning-rate article (https://kexue.fm/archives/7196).
* :mod:`~kexue.analysis.unargmaxable` — classes of a softmax layer that no input makes the argmax: exact LP (scipy
  HiGHS), a certifying pre-filter and Su's Frank–Wolfe min-norm (https://kexue.fm/archives/9046).

The MLP-style token mixers of https://kexue.fm/archives/8431 are :class:`kexue.nn.FNetMixing` and
:class:`kexue.nn.SpatialGatingUnit` (``TransformerConfig.token_mixing``).
"""

from kexue.analysis.crf_legality import bmes_crf_experiment, bmes_legal_transitions, is_legal, row_legality
from kexue.analysis.entropy import EntropyWarper, entropy, entropy_normalize, entropy_normalize_logits
from kexue.analysis.gradient_penalty import InequalityResult, gradient_penalty_inequality
from kexue.analysis.leaderboard import LeaderboardMeans, TaskSetMismatch, leaderboard_means, read_leaderboard
from kexue.analysis.simsiam import conserved_quantity, plot_simsiam, simsiam_limit, simsiam_toy
from kexue.analysis.unargmaxable import certified_argmaxable, find_unargmaxable, is_argmaxable, min_hull_norm

__all__ = ["EntropyWarper", "InequalityResult", "LeaderboardMeans", "TaskSetMismatch", "entropy", "entropy_normalize",
           "conserved_quantity", "entropy_normalize_logits", "gradient_penalty_inequality", "leaderboard_means", "plot_simsiam", "read_leaderboard",
           "simsiam_limit", "simsiam_toy", "bmes_crf_experiment", "bmes_legal_transitions", "is_legal",
           "row_legality", "certified_argmaxable", "find_unargmaxable", "is_argmaxable", "min_hull_norm"]
