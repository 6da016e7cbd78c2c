"""One Model interface over torch networks and scikit-learn estimators: build, fit,
predict, save and load; the torch loop, networks, augmentation and pretrained starts.
"""
