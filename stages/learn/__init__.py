"""Learn: features, models, networks, the training loop (hand-written MLP gradients,
augmentation, pretrained checkpoints) and the metrics; run by train, tune and evaluate, which
list this folder as a dependency in dvc.yaml. This file imports nothing: each module imports
what it needs (a scikit-learn model is trained without loading torch).
"""
