"""Post-training compression of the serving tables (quantisation) and the compression report."""

from recsys_gnn.compress.quantize import (
    QUANTIZATIONS,
    Encoded,
    Quantizer,
    binarize,
    dequantize_int8,
    hamming_distance,
    hamming_scores,
    int8_scores,
    quantize_int8,
    to_fp16,
)
from recsys_gnn.compress.report import compression_report, measure_latency, report_row, write_report

__all__ = [
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
    "quantize_int8",
    "report_row",
    "to_fp16",
    "write_report",
]
