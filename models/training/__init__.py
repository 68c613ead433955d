"""Training scripts that produce the PyTorch models facegate ships (`facegate train ...`, needs facegate[train])."""
