"""Training data: the dataset records, the dataset axis (``DATASETS``) and the loaders that put a
dataset on the training device as whole tensors."""
