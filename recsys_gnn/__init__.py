"""recsys-gnn."""
