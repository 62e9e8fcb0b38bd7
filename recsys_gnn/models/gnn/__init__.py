"""GNN compressors: message-passing stacks mapping node features (N, D) to (N, D)."""

from recsys_gnn.models.gnn.base import GNNStack
from recsys_gnn.models.gnn.gat import GAT
from recsys_gnn.models.gnn.gcn import GCN
from recsys_gnn.models.gnn.lightgcn import LightGCN
from recsys_gnn.models.gnn.sage import SAGE

__all__ = ["GAT", "GCN", "GNNStack", "LightGCN", "SAGE"]
