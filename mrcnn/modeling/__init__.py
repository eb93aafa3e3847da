"""Keras network pieces of Mask R-CNN: backbone, FPN, RPN, heads and graph layers."""
