"""The training side (PyTorch): the paper's attention ResNet18 and focal loss, CK+ pretraining, LOSO on
CASME II and SAMM, calibration, reports and the ablation; ``python -m training --help`` lists the commands.

Faces are found, aligned and turned into the classifier's input by :mod:`realtime.core`, the code the stream
runs, so a model sees in training exactly what it sees live.
"""
