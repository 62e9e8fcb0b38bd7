"""Explicit rating prediction (``task=rating``): heads, predictors, data module, metrics and the job."""

from recsys_gnn.rating.head import RatingHead
from recsys_gnn.rating.models import BiasedMF, GlobalMean, RatingModel, RatingPredictor, UserItemBiases

__all__ = ["BiasedMF", "GlobalMean", "RatingHead", "RatingModel", "RatingPredictor", "UserItemBiases"]
