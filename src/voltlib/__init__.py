"""voltlib: run an electric car-sharing network and its charge points, and keep them safe."""

__version__ = "0.1.0"
