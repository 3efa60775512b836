"""kexue.multitask: loss weighting (https://kexue.fm/archives/8870) and gradient methods
(https://kexue.fm/archives/8896, https://kexue.fm/archives/8907) for multi-task learning."""

from kexue.multitask.gradients import (
    GradientBalancer,
    gram_matrix,
    min_norm_two,
    min_norm_weights,
    primary_aux_weights,
)
from kexue.multitask.weighting import (
    SCHEMES,
    MultiTaskLoss,
    UncertaintyWeighting,
    classification_prior_loss,
    generalized_mean,
    regression_prior_loss,
    softmax_initial_loss,
)

__all__ = [
    "MultiTaskLoss",
    "SCHEMES",
    "generalized_mean",
    "softmax_initial_loss",
    "classification_prior_loss",
    "regression_prior_loss",
    "UncertaintyWeighting",
    "gram_matrix",
    "min_norm_two",
    "min_norm_weights",
    "primary_aux_weights",
    "GradientBalancer",
]
