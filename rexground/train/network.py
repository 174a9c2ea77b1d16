"""The text-conditioned grounding network: a residual 3D U-Net whose decoder is steered by the finding.

* Encoder (``encode_image``): nnU-Net-style residual stages (3x3x3 conv, InstanceNorm, LeakyReLU), strided
  convolutions for downsampling. It never sees the text, so one encoder pass serves every finding of a
  scan (the export splits the graph here).
* Conditioning: the sentence embedding and the parsed-structure features go through a small MLP into one
  condition vector ``c``.
* Decoder (``decode``): transposed-conv upsampling, skip concatenation, residual blocks, and FiLM
  (``x * (1 + gamma(c)) + beta(c)``, zero-initialised so training starts from a plain U-Net) at the
  bottleneck and every decoder stage.
* Mask-embedding head (as VoxTell / SAT): per-voxel embeddings dotted with a query vector derived from
  ``c``, so the text decides *which* voxels light up, not only how features are modulated.
* Deep supervision: the same dot-product head on coarser decoder stages, computed only on request
  (``forward(..., deep_supervision=True)``); ``decode`` returns the full-resolution logits only.

No data-dependent Python control flow runs in ``encode_image`` / ``decode``: they trace to ONNX with a
fixed patch shape. Patch sizes must be divisible by ``NetConfig.total_stride``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rexground.train.config import NetConfig


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm3d(channels, eps=1e-5, affine=True)


class ConvNormAct(nn.Module):
    def __init__(self, cin: int, cout: int, stride=(1, 1, 1), slope: float = 0.01):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = _norm(cout)
        self.act = nn.LeakyReLU(slope, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual path (1x1x1 strided projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride=(1, 1, 1), slope: float = 0.01):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _norm(cout)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.skip: nn.Module
        if cin != cout or tuple(stride) != (1, 1, 1):
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), _norm(cout))
        else:
            self.skip = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.skip(x))


class FiLM(nn.Module):
    """Feature-wise affine modulation from the condition vector; identity at initialisation."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=1)
        return x * (1.0 + gamma[:, :, None, None, None]) + beta[:, :, None, None, None]


class DecoderStage(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, stride, n_blocks: int, cond_dim: int, slope: float):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, kernel_size=stride, stride=stride, bias=False)
        blocks = [ResBlock(cout + cskip, cout, slope=slope)]
        blocks += [ResBlock(cout, cout, slope=slope) for _ in range(n_blocks - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.film = FiLM(cond_dim, cout)

    def forward(self, x: Tensor, skip: Tensor, cond: Tensor) -> Tensor:
        x = torch.cat([self.up(x), skip], dim=1)
        return self.film(self.blocks(x), cond)


class GroundingNet(nn.Module):
    """Residual 3D U-Net + FiLM + mask-embedding head. See the module docstring for the data flow."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        f, slope = config.features, config.negative_slope
        self.stem = ConvNormAct(config.in_channels, f[0], slope=slope)
        stages = []
        cin = f[0]
        for s, (cout, stride, n) in enumerate(zip(f, config.strides, config.encoder_blocks, strict=True)):
            blocks = [ResBlock(cin, cout, stride=stride if s else (1, 1, 1), slope=slope)]
            blocks += [ResBlock(cout, cout, slope=slope) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.encoder = nn.ModuleList(stages)

        self.cond = nn.Sequential(
            nn.Linear(config.text_dim + config.query_dim, config.cond_dim),
            nn.LeakyReLU(slope, inplace=True),
            nn.Linear(config.cond_dim, config.cond_dim),
            nn.LeakyReLU(slope, inplace=True),
        )
        self.bottleneck_film = FiLM(config.cond_dim, f[-1])
        # decoder[i] upsamples from stage (n-1-i) to stage (n-2-i); the last one reaches full resolution.
        n = len(f)
        self.decoder = nn.ModuleList(
            DecoderStage(
                f[n - 1 - i],
                f[n - 2 - i],
                f[n - 2 - i],
                config.strides[n - 1 - i],
                config.decoder_blocks,
                config.cond_dim,
                slope,
            )
            for i in range(n - 1)
        )
        e = config.embed_dim
        self.query = nn.Linear(config.cond_dim, e)
        self.query_bias = nn.Linear(config.cond_dim, 1)
        # Pixel-embedding projections: index 0 = full resolution, 1.. = deep-supervision stages (coarser).
        self.pixel_embed = nn.ModuleList(nn.Conv3d(f[k], e, 1) for k in range(config.deep_supervision + 1))
        self._scale = 1.0 / math.sqrt(e)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
                nn.init.kaiming_normal_(m.weight, a=self.config.negative_slope)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # A background-leaning start: most voxels of most prompts are negative.
        nn.init.constant_(self.query_bias.bias, -2.0)

    # ---- the two traced halves -------------------------------------------------------------------------
    def encode_image(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, C_in, Z, Y, X) -> skip features, one per stage, finest first."""
        h = self.stem(x)
        feats = []
        for stage in self.encoder:
            h = stage(h)
            feats.append(h)
        return tuple(feats)

    def decode(self, *args: Tensor) -> Tensor:
        """``decode(*feats, text_emb, query_feat)`` -> (B, 1, Z, Y, X) logits at full patch resolution."""
        *feats, text_emb, query_feat = args
        return self._decode(tuple(feats), text_emb, query_feat, deep_supervision=False)[0]

    def forward(
        self,
        x: Tensor,
        text_emb: Tensor,
        query_feat: Tensor,
        prompts_per_image: int = 1,
        deep_supervision: bool = False,
    ) -> Tensor | list[Tensor]:
        """Encode ``x`` once and decode ``prompts_per_image`` prompts per image (prompt rows of one image are
        consecutive in ``text_emb``). Returns the logits, or with ``deep_supervision`` the list
        [full resolution, coarser, ...]."""
        feats = self.encode_image(x)
        if prompts_per_image != 1:
            feats = tuple(f.repeat_interleave(prompts_per_image, dim=0) for f in feats)
        outs = self._decode(feats, text_emb, query_feat, deep_supervision=deep_supervision)
        return outs if deep_supervision else outs[0]

    def _decode(
        self, feats: tuple[Tensor, ...], text_emb: Tensor, query_feat: Tensor, deep_supervision: bool
    ):
        cond = self.cond(torch.cat([text_emb, query_feat], dim=1))
        q = self.query(cond)[:, :, None, None, None] * self._scale
        bias = self.query_bias(cond)[:, :, None, None, None]
        h = self.bottleneck_film(feats[-1], cond)
        n = len(feats)
        n_ds = self.config.deep_supervision if deep_supervision else 0
        coarse: list[Tensor] = []
        for i, stage in enumerate(self.decoder):
            h = stage(h, feats[n - 2 - i], cond)
            level = n - 2 - i  # the encoder stage whose resolution h now has
            if 1 <= level <= n_ds:
                coarse.append(self._head(h, level, q, bias))
        full = self._head(h, 0, q, bias)
        return [full, *reversed(coarse)]

    def _head(self, h: Tensor, level: int, q: Tensor, bias: Tensor) -> Tensor:
        emb = self.pixel_embed[level](h)
        return (emb * q).sum(dim=1, keepdim=True) + bias


class EncoderGraph(nn.Module):
    """``encode_image`` as a module of its own, for tracing / ONNX export of the image half."""

    def __init__(self, net: GroundingNet):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.net.encode_image(x)


class DecoderGraph(nn.Module):
    """``decode`` as a module of its own: ``forward(*feats, text_emb, query_feat)`` -> logits."""

    def __init__(self, net: GroundingNet):
        super().__init__()
        self.net = net

    def forward(self, *args: Tensor) -> Tensor:
        return self.net.decode(*args)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
