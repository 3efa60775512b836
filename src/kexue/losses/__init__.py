"""Losses from the articles: CoSENT, the Sentence-BERT baselines, multi-label categorical cross-entropy."""

from kexue.losses.cosent import CoSENTLoss, cosent_loss, cosent_loss_from_embeddings
from kexue.losses.multilabel import (
    MultilabelCategoricalCrossentropy,
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)
from kexue.losses.sbert import CosineMSELoss, SoftmaxLoss, cosine_mse_loss
from kexue.losses.simsiam import SimSiamLoss, simsiam_predictor
from kexue.losses.sparse_softmax import SparseSoftmaxCrossEntropy, sparse_softmax, sparse_softmax_cross_entropy

__all__ = ["CoSENTLoss", "CosineMSELoss", "MultilabelCategoricalCrossentropy", "SimSiamLoss", "SoftmaxLoss",
           "simsiam_predictor", "cosent_loss", "SparseSoftmaxCrossEntropy", "sparse_softmax",
           "sparse_softmax_cross_entropy",
           "cosent_loss_from_embeddings", "cosine_mse_loss", "multilabel_categorical_crossentropy",
           "sparse_multilabel_categorical_crossentropy"]
