"""The streaming update compiled ahead of time: ``MultiTimeframeEncoder.step_and_fuse`` of one
timeframe, exported with ``torch.export`` and compiled by AOTInductor into a shared library.

A live update is a few dozen small operations on one bar, so what it costs is the overhead
around them more than their arithmetic. AOTInductor runs the generated C++ straight from a
small runner: no guard checks and no Python wrappers per call, as a ``torch.compile``d function
has. In exchange the library holds the weights it was compiled with as constants, so
``CompiledStreamSteps`` records the encoder's weights (storage and version of every parameter)
and ``matches`` tells whether they are still the encoder's; ``start_stream`` and
``compile_stream`` drop steps compiled for other weights.

One library per (timeframe, batch size, device), compiled on the first bar that needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from forex_diffusion.models.sssd_encoder import MultiTimeframeEncoder, StepCoefficients

#: what ``step_and_fuse`` returns: context (B, context_dim), summary (B, d_model), real states
StepOutput = tuple[Tensor, Tensor, list[Tensor]]


class _TimeframeStep(nn.Module):
    """``step_and_fuse`` of one timeframe as a module, what ``torch.export`` takes."""

    def __init__(self, encoder: MultiTimeframeEncoder, timeframe: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.timeframe = timeframe

    def forward(
        self,
        bar: Tensor,
        states: list[Tensor],
        coefficients: list[StepCoefficients],
        summaries: list[Tensor],
    ) -> StepOutput:
        return self.encoder.step_and_fuse(self.timeframe, bar, states, coefficients, summaries)


def weights_stamp(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """(storage address, version) of every parameter: changes when a weight is replaced or
    modified in place (inference tensors keep no version: their address alone)."""
    return tuple(
        (p.data_ptr(), -1 if p.is_inference() else p._version) for p in module.parameters()
    )


class CompiledStreamSteps:
    """``step_and_fuse`` through AOTInductor libraries of the weights ``encoder`` has now.

    Call it as ``step_and_fuse`` (eval mode, no autograd); results equal the eager path within
    float tolerance.
    """

    def __init__(self, encoder: MultiTimeframeEncoder) -> None:
        self.encoder = encoder
        self.stamp = weights_stamp(encoder)
        self.runners: dict[tuple[str, int, torch.device], Callable[..., list[Tensor]]] = {}

    def matches(self) -> bool:
        """Whether the compiled weights are still the encoder's."""
        return weights_stamp(self.encoder) == self.stamp

    def __call__(
        self,
        timeframe: str,
        bar: Tensor,
        states: Sequence[Tensor],
        coefficients: Sequence[StepCoefficients],
        summaries: Sequence[Tensor],
    ) -> StepOutput:
        """``step_and_fuse`` (inputs contiguous: the library was compiled for those strides)."""
        key = (timeframe, bar.shape[0], bar.device)
        run = self.runners.get(key)
        if run is None:
            args = (bar, list(states), list(coefficients), list(summaries))
            run = self.runners[key] = self._compile(timeframe, args)
        # the library's flat calling convention (the loaded package's own __call__ flattens
        # and unflattens with torch's pytree, which took a third of the update's time)
        flat = run([bar, *states, *(c for coefs in coefficients for c in coefs), *summaries])
        return flat[0], flat[1], flat[2:]

    def _compile(self, timeframe: str, args: tuple[object, ...]) -> Callable[..., list[Tensor]]:
        """Export the step for these inputs' shapes and compile it (tens of seconds); returns
        the library's run on the flat list of input tensors (``args`` flattened in order),
        which gives the flat list of outputs."""
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # torch's own pytree code warns about its deprecated LeafSpec while it exports
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            # export traces ordinary tensors: copies of what may be inference tensors
            example = torch.utils._pytree.tree_map(
                lambda x: x.clone() if isinstance(x, Tensor) else x, args
            )
            program = torch.export.export(_TimeframeStep(self.encoder, timeframe), example)
            package = torch._inductor.aoti_compile_and_package(program)
            loaded = torch._inductor.aoti_load_package(package)
        run: Callable[..., list[Tensor]] = loaded.loader.boxed_run
        return run
