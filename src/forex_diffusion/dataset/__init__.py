"""Training samples between features and model: shared feature blocks, leak-free windows,
split and embargo rules, collation.

Imports only ``features``, ``config``, ``errors`` and ``timeframes`` (never the model,
training, inference or evaluation layers).
"""
