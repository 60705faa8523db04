"""Plain-PyTorch semantics of the gated activations: out = act(x[..., :d]) * x[..., d:] in fp32."""
import math

import torch


def _split(input: torch.Tensor):
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    d = input.shape[-1] // 2
    return input[..., :d].to(acc), input[..., d:].to(acc)


def silu_and_mul(input: torch.Tensor) -> torch.Tensor:
    """silu(a) * b with silu(a) = a / (1 + exp(-a))."""
    a, b = _split(input)
    return (a * torch.sigmoid(a) * b).to(input.dtype)


def gelu_and_mul(input: torch.Tensor) -> torch.Tensor:
    """gelu(a) * b with the exact erf GELU: 0.5 a (1 + erf(a / sqrt(2)))."""
    a, b = _split(input)
    return (0.5 * a * (1.0 + torch.erf(a / math.sqrt(2.0))) * b).to(input.dtype)


def gelu_tanh_and_mul(input: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(a) * b: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))."""
    a, b = _split(input)
    inner = math.sqrt(2.0 / math.pi) * (a + 0.044715 * a * a * a)
    return (0.5 * a * (1.0 + torch.tanh(inner)) * b).to(input.dtype)
