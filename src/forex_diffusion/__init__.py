"""forex_diffusion: probabilistic multi-horizon FX forecasting with S4D encoders and a diffusion head."""

__version__ = "0.1.0"
