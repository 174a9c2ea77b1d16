"""The text-conditioned grounding network: a residual 3D U-Net whose output is steered by the finding.

The work is split so that a scan's several findings share almost all of it (the export splits the graph
at the same place):

* ``encode_image`` (once per tile, never sees the text): nnU-Net-style residual encoder (3x3x3 conv,
  InstanceNorm, LeakyReLU, strided-conv downsampling) and a full U-Net decoder (transposed-conv
  upsampling, skip concatenation, residual blocks) back to full resolution. It returns the per-voxel
  mask embeddings at full resolution (``embed_dim`` channels) and the decoder features of the coarse levels
  ``cond_level`` ... bottleneck.
* ``decode`` (once per finding, cheap): the sentence embedding and the parsed-structure features go through
  an MLP into one condition vector ``c``. A conditioned branch runs over the coarse levels, bottleneck first:
  FiLM (``x * (1 + gamma(c)) + beta(c)``, zero-initialised) on the shared decoder features of each level,
  upsampled and merged with the level below, one residual block per level, ending in a one-channel
  *where* map at 1/2**cond_level resolution (this is what reads "right lower lobe" and tells two nodules of
  one scan apart). At full resolution the mask-embedding head (as in VoxTell / SAT) dots the per-voxel
  embeddings with a query vector derived from ``c`` (the *what*: this lesion's look, sharp boundaries).
  Logits = embedding . query + bias + trilinear-upsampled where-map.
* Anatomy gate (``NetConfig.anatomy_gate_maps`` = G > 0, with anatomy prior input channels): ``encode_image``
  also returns the input's anatomy channels (lungs by side, lobes, ...) untouched, and ``decode`` mixes
  them into G per-finding maps with weights read from ``c`` (map_g = sum_k w_gk(c) * anatomy_k). The maps
  are average-pooled to every conditioned level and added to the branch there (a 1x1x1 projection), and
  map 0 is added to the logits at every output. "Right lower lobe" then only has to become a large weight
  on the RLL channel, a linear read-out of the parsed lobes that a few hundred steps learn, instead of
  a spatial rule the convolutions would have to discover from examples.
* Deep supervision: the where-maps of the coarsest conditioned levels, computed only on request
  (``forward(..., deep_supervision=True)``); ``decode`` returns the full-resolution logits only.

Cost: per finding, a few residual blocks at 1/4 resolution or coarser plus a dot product per voxel, so
three findings cost little more than one. No data-dependent Python control flow runs in ``encode_image``
/ ``decode``: they trace to ONNX with a fixed patch shape. Patch sizes must be divisible by
``NetConfig.total_stride``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


class UpStage(nn.Module):
    """Text-free decoder stage: upsample, concatenate the skip, residual blocks."""

    def __init__(self, cin: int, cskip: int, cout: int, stride, n_blocks: int, slope: float):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, kernel_size=stride, stride=stride, bias=False)
        blocks = [ResBlock(cout + cskip, cout, slope=slope)]
        blocks += [ResBlock(cout, cout, slope=slope) for _ in range(n_blocks - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.blocks(torch.cat([self.up(x), skip], dim=1))


class CondStage(nn.Module):
    """Conditioned branch stage: FiLM on the shared features of this level, merged with the upsampled
    branch state from the level above, one residual block, and a one-channel where-map."""

    def __init__(
        self,
        cin: int,
        channels: int,
        stride,
        cond_dim: int,
        slope: float,
        with_where: bool,
        gate_maps: int = 0,
    ):
        super().__init__()
        self.film = FiLM(cond_dim, channels)
        self.prior = nn.Conv3d(gate_maps, channels, 1, bias=False) if gate_maps else None
        self.up = (
            nn.ConvTranspose3d(cin, channels, kernel_size=stride, stride=stride, bias=False) if cin else None
        )
        self.block = ResBlock(channels, channels, slope=slope)
        # Only levels whose map is used (the finest, and the deep-supervision ones) get a head: a head
        # without a gradient would stall DistributedDataParallel.
        self.where = nn.Conv3d(channels, 1, 1) if with_where else None

    def forward(
        self, shared: Tensor, above: Tensor | None, cond: Tensor, prior: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        h = self.film(shared, cond)
        if self.prior is not None and prior is not None:
            h = h + self.prior(prior)
        if self.up is not None and above is not None:
            h = h + self.up(above)
        h = self.block(h)
        return h, self.where(h) if self.where is not None else None


class GroundingNet(nn.Module):
    """Residual 3D U-Net + FiLM-conditioned branch + mask-embedding head (see the module docstring)."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        f, slope, n = config.features, config.negative_slope, len(config.features)
        self.stem = ConvNormAct(config.in_channels, f[0], slope=slope)
        stages = []
        cin = f[0]
        for s, (cout, stride, nb) in enumerate(zip(f, config.strides, config.encoder_blocks, strict=True)):
            blocks = [ResBlock(cin, cout, stride=stride if s else (1, 1, 1), slope=slope)]
            blocks += [ResBlock(cout, cout, slope=slope) for _ in range(nb - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.encoder = nn.ModuleList(stages)
        # decoder[i] goes from level n-1-i to level n-2-i; the last one reaches full resolution (level 0).
        self.decoder = nn.ModuleList(
            UpStage(
                f[n - 1 - i],
                f[n - 2 - i],
                f[n - 2 - i],
                config.strides[n - 1 - i],
                config.decoder_blocks,
                slope,
            )
            for i in range(n - 1)
        )
        e = config.embed_dim
        self.pixel_embed = nn.Conv3d(f[0], e, 1)

        self.cond = nn.Sequential(
            nn.Linear(config.text_dim + config.query_dim, config.cond_dim),
            nn.LeakyReLU(slope, inplace=True),
            nn.Linear(config.cond_dim, config.cond_dim),
            nn.LeakyReLU(slope, inplace=True),
        )
        # cond_stages[j] works on level n-1-j (bottleneck first) down to cond_level.
        lc = config.cond_level
        self.cond_stages = nn.ModuleList(
            CondStage(
                f[k + 1] if k < n - 1 else 0,
                f[k],
                config.strides[k + 1] if k < n - 1 else (1, 1, 1),
                config.cond_dim,
                slope,
                with_where=k < lc + max(1, config.deep_supervision),
                gate_maps=config.anatomy_gate_maps,
            )
            for k in range(n - 1, lc - 1, -1)
        )
        # The anatomy gate: per finding, G maps mixed from the A anatomy input channels.
        self.gate = (
            nn.Linear(config.cond_dim, config.anatomy_gate_maps * (config.in_channels - 1))
            if config.anatomy_gate_maps
            else None
        )
        # Cumulative stride from full resolution to each level: the pooling of the gate maps.
        self._level_stride: list[tuple[int, int, int]] = []
        cum = [1, 1, 1]
        for st in config.strides:
            cum = [c * k for c, k in zip(cum, st, strict=True)]
            self._level_stride.append((cum[0], cum[1], cum[2]))
        self.query = nn.Linear(config.cond_dim, e)
        self.query_bias = nn.Linear(config.cond_dim, 1)
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
        """(B, C_in, Z, Y, X) -> (full-resolution mask embeddings, shared decoder features of levels
        cond_level ... bottleneck[, the anatomy input channels when the gate is on]), a tuple of
        2 + n_stages - 1 - cond_level (+ 1) tensors."""
        h = self.stem(x)
        skips = []
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        n = len(skips)
        shared = [h]  # level n-1 (bottleneck), then finer
        for i, stage in enumerate(self.decoder):
            h = stage(h, skips[n - 2 - i])
            shared.append(h)
        lc = self.config.cond_level
        coarse = shared[: n - lc][::-1]  # levels lc ... n-1, finest first
        if self.gate is not None:
            return (self.pixel_embed(h), *coarse, x[:, 1:])
        return (self.pixel_embed(h), *coarse)

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
        [full resolution, coarser where-maps ...]."""
        feats = self.encode_image(x)
        if prompts_per_image != 1:
            feats = tuple(f.repeat_interleave(prompts_per_image, dim=0) for f in feats)
        outs = self._decode(feats, text_emb, query_feat, deep_supervision=deep_supervision)
        return outs if deep_supervision else outs[0]

    def _decode(
        self, feats: tuple[Tensor, ...], text_emb: Tensor, query_feat: Tensor, deep_supervision: bool
    ):
        cond = self.cond(torch.cat([text_emb, query_feat], dim=1))
        prior_full: Tensor | None = None
        if self.gate is not None:
            *rest, anatomy = feats
            feats = tuple(rest)
            prior_full = self._gate_maps(anatomy, cond)
        emb, coarse = feats[0], feats[1:]  # coarse: levels cond_level ... bottleneck, finest first
        n, lc = len(self.config.features), self.config.cond_level
        priors = [self._pool(prior_full, level) for level in range(n - 1, lc - 1, -1)]  # coarsest first
        h: Tensor | None = None
        where: list[Tensor] = []  # coarsest first
        for stage, shared, prior in zip(self.cond_stages, reversed(coarse), priors, strict=True):
            h, w = stage(shared, h, cond, prior)
            if w is not None:
                where.append(w + prior[:, :1] if prior is not None else w)
        q = self.query(cond)[:, :, None, None, None] * self._scale
        bias = self.query_bias(cond)[:, :, None, None, None]
        up = F.interpolate(where[-1], size=emb.shape[2:], mode="trilinear", align_corners=False)
        full = (emb * q).sum(dim=1, keepdim=True) + bias + up
        if prior_full is not None:
            # map 0 sharp at full resolution; ``up`` carries its pooled copy, so take that out again
            full = (
                full
                + prior_full[:, :1]
                - F.interpolate(priors[-1][:, :1], size=emb.shape[2:], mode="trilinear", align_corners=False)
            )
        if not deep_supervision:
            return [full]
        k = self.config.deep_supervision
        return [full, *(w + bias for w in where[::-1][:k])]

    def _gate_maps(self, anatomy: Tensor, cond: Tensor) -> Tensor:
        """(B, A, Z, Y, X) anatomy channels, (B, cond_dim) -> (B, G, Z, Y, X) text-weighted mixtures."""
        assert self.gate is not None
        b, a = anatomy.shape[0], anatomy.shape[1]
        weights = self.gate(cond).reshape(b, -1, a)  # (B, G, A)
        mixed = torch.matmul(weights, anatomy.flatten(2))  # (B, G, Z*Y*X)
        return mixed.reshape(b, weights.shape[1], *anatomy.shape[2:])

    def _pool(self, prior: Tensor | None, level: int) -> Tensor | None:
        if prior is None:
            return None
        k = self._level_stride[level]
        return prior if k == (1, 1, 1) else F.avg_pool3d(prior, kernel_size=k, stride=k)


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
