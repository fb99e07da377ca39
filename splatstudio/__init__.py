"""SplatStudio: photos to 3D Gaussian Splatting scenes on the desktop."""

__version__ = "0.1.0"
