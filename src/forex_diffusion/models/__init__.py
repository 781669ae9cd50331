"""SSSD model: S4D multi-timeframe encoder, cosine diffusion schedule, FiLM MLP denoiser.

Import the submodules directly (``forex_diffusion.models.sssd``, ``.checkpoint``, ...); this
package file stays free of imports so that ``import forex_diffusion.models.s4_layer`` is light.
"""
