"""Post-training compression of the serving tables (quantisation) and the compression report."""

from recsys_gnn.compress.quantize import (
    PQ_SUBSPACES,
    QUANTIZATIONS,
    Encoded,
    Quantizer,
    binarize,
    dequantize_int8,
    hamming_distance,
    hamming_scores,
    int8_scores,
    pq_decode,
    pq_encode,
    pq_scores,
    quantize_int8,
    to_fp16,
    train_pq,
)
from recsys_gnn.compress.report import compression_report, measure_latency, report_row, write_report
from recsys_gnn.compress.search import Searcher

__all__ = [
    "PQ_SUBSPACES",
    "QUANTIZATIONS",
    "Encoded",
    "Quantizer",
    "binarize",
    "compression_report",
    "dequantize_int8",
    "hamming_distance",
    "hamming_scores",
    "int8_scores",
    "measure_latency",
    "pq_decode",
    "pq_encode",
    "pq_scores",
    "quantize_int8",
    "report_row",
    "Searcher",
    "to_fp16",
    "train_pq",
    "write_report",
]
