"""kexue: the NLP techniques of Su Jianlin's blog kexue.fm as tested PyTorch units and recipes.

Layers (imports go one way, top to bottom): cli -> tasks -> train -> techniques (losses, optim,
regularizers, multitask, adapters, extraction, metrics) -> models -> nn -> data. See DESIGN.md.
"""

__version__ = "0.1.0"
