"""Diffusion head: zero-initialised output, FiLM conditioning, fast path == per-row path."""

from __future__ import annotations

import math

import torch

from forex_diffusion.models.diffusion_head import DiffusionHead, timestep_embedding

torch.set_num_threads(1)


def _head(seed: int = 0) -> DiffusionHead:
    torch.manual_seed(seed)
    return DiffusionHead(cond_dim=10, hidden_dim=16, n_blocks=3, timestep_embedding_dim=8)


def test_timestep_embedding_shape_and_values() -> None:
    t = torch.tensor([0.0, 1.0, 999.0])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    assert torch.allclose(emb[0], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1.0]))
    assert torch.allclose(emb[1, 0], torch.tensor(math.sin(1.0)))
    assert not torch.allclose(emb[1], emb[2])


def test_untrained_head_outputs_zero() -> None:
    head = _head()
    out = head(torch.randn(5, 1), torch.randint(0, 1000, (5,)), torch.randn(5, 10))
    assert out.shape == (5, 1)
    assert torch.equal(out, torch.zeros(5, 1))


def test_output_depends_on_x_t_timestep_and_conditioning() -> None:
    head = _head()
    torch.nn.init.normal_(head.out.weight)
    x, t, c = torch.randn(4, 1), torch.tensor([10, 10, 10, 10]), torch.randn(4, 10)
    base = head(x, t, c)
    assert not torch.allclose(head(x + 0.5, t, c), base)
    assert not torch.allclose(head(x, t + 300, c), base)
    assert not torch.allclose(head(x, t, c + 0.5), base)


def test_precomputed_film_fast_path_equals_per_row_forward() -> None:
    """Sampling path: conditioning once per (forecast, horizon), timestep once per step."""
    head = _head()
    torch.nn.init.normal_(head.out.weight)
    m, s = 6, 7  # conditions × samples
    cond = torch.randn(m, 10)
    x = torch.randn(m, s, 1)
    t = torch.tensor([321])
    film = head.condition_film(cond)[:, None] + head.time_film_of(t)[0]
    fast = head.denoise(x, film)  # (m, s, 1)
    rows = head(
        x.reshape(m * s, 1),
        t.expand(m * s),
        cond[:, None, :].expand(m, s, 10).reshape(m * s, 10),
    ).reshape(m, s, 1)
    assert torch.allclose(fast, rows, atol=1e-6)


def test_gradients_reach_every_parameter_after_one_update() -> None:
    head = _head()
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    x, t, c = torch.randn(32, 1), torch.randint(0, 1000, (32,)), torch.randn(32, 10)
    target = torch.randn(32, 1)
    for _ in range(2):  # the zero output layer blocks upstream gradients only on the first step
        opt.zero_grad()
        (head(x, t, c) - target).pow(2).mean().backward()
        opt.step()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_norm_rows_is_layer_norm_without_affine() -> None:
    """The head's normalisation (group norm with one group, for speed) = ``F.layer_norm``."""
    from forex_diffusion.models.diffusion_head import norm_rows

    g = torch.Generator().manual_seed(0)
    for shape in [(7, 48), (3, 5, 16), (2, 3, 4, 128)]:
        h = torch.randn(*shape, generator=g) * 5 + 3
        want = torch.nn.functional.layer_norm(h, (shape[-1],))
        got = norm_rows(h)
        assert got.shape == h.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
