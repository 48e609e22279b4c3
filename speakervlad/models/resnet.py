"""ResNet-34 trunks: features (B, F, T) -> frame features (B, D, T').

Both trunks are length-aware: after every block, frames beyond each
utterance's (downsampled) length are set to zero, which is exactly the zero
padding an unpadded utterance would see at its end. So padding a batch never
changes an utterance's frame features, and chunks of a long recording give the
same frames as the whole (see :mod:`speakervlad.embedding.torch_embedder`).

Each trunk declares ``out_dim`` (channels x remaining frequency bins) and
``time_stride`` (input frames per output frame).

Every block and trunk has an ``inplace`` flag (off by default), which
:func:`speakervlad.embedding.torch_embedder.inference_copy` turns on: ReLU, residual additions
and the zeroing of padded frames then reuse the convolutions' output tensors
(no autograd, fewer passes over memory), with the same results.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import Registry
from .masking import mask_time, pool_lengths, stride_lengths, zero_padding_

TRUNKS: Registry[nn.Module] = Registry("trunk")


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class _InPlace(nn.Module):
    """Elementwise steps that run in place when ``inplace`` is set (inference only)."""

    inplace = False

    def mask(self, x: Tensor, lengths: Tensor) -> Tensor:
        return zero_padding_(x, lengths) if self.inplace else mask_time(x, lengths)

    def relu(self, x: Tensor) -> Tensor:
        return x.relu_() if self.inplace else x.relu()

    def add(self, x: Tensor, y: Tensor) -> Tensor:
        return x.add_(y) if self.inplace else x + y


class BasicBlock(_InPlace):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34)."""

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        """The residual branch's last BatchNorm (zeroed by :meth:`_Stages.zero_init_residual_`)."""
        return self.conv2[1]

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.stride = stride

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = stride_lengths(lengths, self.stride)
        out = self.mask(self.relu(self.conv1(x)), lengths)
        out = self.relu(self.add(self.conv2(out), self.shortcut(x)))
        return self.mask(out, lengths), lengths


class Bottleneck(_InPlace):
    """1x1 (strided) -> 3x3 -> 1x1 with a shortcut, as in the reference Keras code."""

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        return self.expand[1]

    def __init__(self, cin: int, widths: tuple[int, int, int], stride: int):
        super().__init__()
        mid1, mid2, cout = widths
        self.reduce = _conv_bn(cin, mid1, 1, stride)
        self.conv = _conv_bn(mid1, mid2, 3)
        self.expand = _conv_bn(mid2, cout, 1)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.stride = stride

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = stride_lengths(lengths, self.stride)
        out = self.mask(self.relu(self.reduce(x)), lengths)
        out = self.relu(self.conv(out))
        out = self.relu(self.add(self.expand(out), self.shortcut(x)))
        return self.mask(out, lengths), lengths


class _Stages(_InPlace):
    def zero_init_residual_(self) -> None:
        """Make every residual block start as its shortcut (``train.zero_init_residual``)."""
        for block in self.blocks:
            nn.init.zeros_(block.last_norm.weight)

    def run_blocks(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x, lengths


class ThinResNet34(_Stages):
    """The thin ResNet-34 of Xie et al. (2019) for 257-bin spectrograms.

    7x7 conv (64) + 2x2 max-pool; bottleneck stages of 2, 3, 3, 3 blocks with
    widths (48,48,96), (96,96,128), (128,128,256), (256,256,512), strides 1, 2,
    2, 2; then a (3,1) max-pool with stride (2,1) over frequency. For 257 bins
    the output map is 512 x 7 x T/16, returned flattened as (B, 3584, T/16).
    """

    STAGES = ((2, (48, 48, 96), 1), (3, (96, 96, 128), 2), (3, (128, 128, 256), 2), (3, (256, 256, 512), 2))

    def __init__(self, num_bins: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 7, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.pool = nn.MaxPool2d(2, 2)
        blocks, cin = [], 64
        for count, widths, stride in self.STAGES:
            for i in range(count):
                blocks.append(Bottleneck(cin, widths, stride if i == 0 else 1))
                cin = widths[2]
        self.blocks = nn.ModuleList(blocks)
        self.freq_pool = nn.MaxPool2d((3, 1), (2, 1))
        freq = num_bins // 2
        for _, _, stride in self.STAGES:
            freq = (freq - 1) // stride + 1
        freq = (freq - 3) // 2 + 1
        if freq < 1:
            raise ConfigError(f"thin_resnet34 needs more than {num_bins} frequency bins")
        self.out_dim = cin * freq
        self.time_stride = 16

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.stem(feats[:, None])  # (B, 64, F, T)
        x = self.pool(x)  # (B, 64, F/2, T/2); inputs are >= 0 after ReLU
        lengths = pool_lengths(lengths, 2)
        x, lengths = self.run_blocks(self.mask(x, lengths), lengths)
        x = self.freq_pool(x)  # (B, 512, 7, T/16)
        return x.flatten(1, 2), lengths  # (B, 3584, T/16)


class ResNet34(_Stages):
    """Basic-block ResNet-34 (3, 4, 6, 3) as in WeSpeaker / voxceleb_trainer.

    3x3 stem of ``width`` channels; stages of width, 2w, 4w, 8w channels with
    strides 1, 2, 2, 2. For 80 fbank bins and width 32 the output map is
    256 x 10 x T/8, returned flattened as (B, 2560, T/8).
    """

    DEPTHS = (3, 4, 6, 3)

    def __init__(self, num_bins: int, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin, freq = [], width, num_bins
        for stage, depth in enumerate(self.DEPTHS):
            cout, stride = width * 2**stage, (1 if stage == 0 else 2)
            for i in range(depth):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            freq = (freq - 1) // stride + 1
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = cin * freq
        self.time_stride = 8

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.mask(self.stem(feats[:, None]), lengths)  # (B, w, F, T)
        x, lengths = self.run_blocks(x, lengths)  # (B, 8w, F/8, T/8)
        return x.flatten(1, 2), lengths


@TRUNKS.register("thin_resnet34")
def _thin(cfg: ModelConfig, num_bins: int) -> nn.Module:
    return ThinResNet34(num_bins)


@TRUNKS.register("resnet34")
def _resnet34(cfg: ModelConfig, num_bins: int) -> nn.Module:
    return ResNet34(num_bins, cfg.trunk_width)


def build_trunk(cfg: ModelConfig, num_bins: int) -> nn.Module:
    """The trunk named by ``cfg.trunk`` for ``num_bins`` input bins."""
    return TRUNKS.get(cfg.trunk)(cfg, num_bins)
