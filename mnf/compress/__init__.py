"""Other roads to small networks: low-rank factorization, activation pruning, weight quantization.

    from mnf.compress import factorize, prune, quantize, fake_quantize
    factorize(model, energy=0.9)          # truncated SVD of Linear / Conv2d layers
    prune(model, images, threshold=0)     # drop units that never fire, rebuild smaller layers
    quantize(model, bits=8)               # int8 weights + per-channel scales, dequantised forward
    fake_quantize(model, bits=4)          # round weights in place to study accuracy vs bits

Everything runs where the model is (:func:`mnf.metrics.model_device`): ``images`` may be on any
device and are moved batch by batch; reports hold Python numbers and CPU tensors.
"""
from mnf.compress.factorize import (FactorizationReport, FactorRow, choose_rank, factorize, factorize_layer,
                                    weight_matrix)
from mnf.compress.prune import (Chain, PruneReport, UnitStats, activation_counts, find_chains, prune,
                                prune_chain)
from mnf.compress.quantize import (QuantizedConv2d, QuantizedLinear, QuantReport, dequantize, fake_quant,
                                   fake_quantize, quantize, quantize_tensor)

__all__ = ["Chain", "FactorRow", "FactorizationReport", "PruneReport", "QuantReport", "QuantizedConv2d",
           "QuantizedLinear", "UnitStats", "activation_counts", "choose_rank", "dequantize", "factorize",
           "factorize_layer", "fake_quant", "fake_quantize", "find_chains", "prune", "prune_chain",
           "quantize", "quantize_tensor", "weight_matrix"]
