"""Length bookkeeping for padded batches: masks and downsampled lengths."""
from __future__ import annotations

import torch
from torch import Tensor


def time_mask(lengths: Tensor, num_frames: int) -> Tensor:
    """(B, T) bool: True for valid frames."""
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


def mask_time(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero the frames of ``x`` (B, ..., T) beyond each row's length."""
    mask = time_mask(lengths, x.shape[-1]).to(x.dtype)  # (B, T)
    return x * mask.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])


def zero_padding_(x: Tensor, lengths: Tensor) -> Tensor:
    """In place: zero the frames of ``x`` (B, ..., T) beyond each row's length.

    Touches only the padded frames (nothing for an unpadded batch); for inference,
    where no autograd graph needs the tensor's old values.
    """
    frames = x.shape[-1]
    for row, length in enumerate(lengths.tolist()):
        if length < frames:
            x[row, ..., length:] = 0
    return x


def stride_lengths(lengths: Tensor, stride: int) -> Tensor:
    """Valid length after a padded convolution with this stride: ceil(L / stride)."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def pool_lengths(lengths: Tensor, kernel: int) -> Tensor:
    """Valid length after an unpadded pooling with kernel = stride: floor(L / kernel)."""
    return torch.div(lengths, kernel, rounding_mode="floor")
