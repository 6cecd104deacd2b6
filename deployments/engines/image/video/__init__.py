"""Video on the image engine: AnimateDiff text-to-video, SVD image-to-video."""
