"""Baseline recommenders (config group ``model``) that the LM -> GNN compressor is compared against.

- :class:`Popularity` (``model=pop``): training popularity, the same list for everyone.
- :class:`MatrixFactorization` (``model=mf``): BPR-MF on id embeddings.
- :class:`LightGCNId` (``model=lightgcn_id``): LightGCN on id embeddings over the user-item graph.
- :class:`LMContent` (``model=lm_content``): frozen LM text embeddings, cosine to the user's mean item.
- :class:`LMFinetune` (``model=lm_finetune``): two-tower model with the LM fine-tuned as item tower.
"""

from recsys_gnn.models.baselines.lightgcn_id import LightGCNId
from recsys_gnn.models.baselines.lm_content import LMContent
from recsys_gnn.models.baselines.lm_finetune import LMFinetune
from recsys_gnn.models.baselines.mf import MatrixFactorization
from recsys_gnn.models.baselines.pop import Popularity

__all__ = ["LMContent", "LMFinetune", "LightGCNId", "MatrixFactorization", "Popularity"]
