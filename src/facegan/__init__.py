"""facegan: CelebA faces at 64x64 with GANs, from a folder of photos to a scored submission.

The package is a small library with thin command-line wrappers (``facegan --help``):
``prepare`` -> ``train`` -> ``sample`` -> ``stats``/``fid`` -> ``pack``, plus ``cnn`` for the
lecture's convolutional-network arithmetic and architectures.
"""

__version__ = "0.1.0"
