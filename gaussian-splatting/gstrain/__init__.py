"""SplatStudio Gaussian Splatting trainer package."""
