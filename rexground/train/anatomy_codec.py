"""Anatomy channels stored compactly: every configured channel packed into a few uint8 volumes ("words"),
expanded to the network's float channels only when a patch is read.

Why: eight anatomy channels stored as eight float16 volumes were 80% of the old training cache (325 of 398
MB for one CT-RATE-size scan), yet they hold a handful of bits per voxel. The channels overlap (a voxel is
in ``lung_right``, in ``lobe_RLL``, in ``zone_basal`` and has three coordinate levels at once), so one label
value per voxel cannot hold them; a bit layout can, exactly:

* ``mask`` field: one 0/1 channel in one bit (lungs, sides, envelopes, body, airways, each zone);
* ``label`` field: the configured lobe channels, which are mutually exclusive by construction (one lobe map
  cut into labels), as one small integer (value k + 1 = the k-th lobe channel of the field, 3 bits for six
  lobes); encoding checks the exclusivity and refuses data that breaks it rather than lose a voxel;
* ``level`` field: a coordinate channel (uint8 levels 1 ... 255, ``anatomy_channels.COORD_CHANNELS``), a
  whole word of its own.

Fields are packed first-fit into 8-bit words in channel order, so ``configs/real.toml``'s eight channels
(two lungs by side + six lobes: 1 + 1 + 3 bits) are ONE uint8 volume. The layout depends only on the
channel names, and is stored with every cached scan (``AnatomyCodec.to_json``).

Exactness: moving a voxel grid to another grid (working grid -> CT grid -> crop -> model spacing) is done by
nearest neighbour for masks, a pure gather of voxels that does not look at the values; gathering words and
then decoding them gives bit for bit the channels that gathering each channel would give (tested against
the dense per-channel path). Decoded values are what inference feeds the network: masks 0/1, levels times
``channel_scale`` in float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rexground.infer.channels import (
    COORD_CHANNELS,
    LOBE_CHANNELS,
    channel_scale,
    check_channel_names,
    masks_from_anatomy,
)

WORD_BITS = 8


@dataclass(frozen=True)
class AnatomyField:
    """Where channels live in the words: ``bits`` bits of word ``word`` starting at bit ``shift``."""

    kind: str  # "mask" | "label" | "level"
    channels: tuple[str, ...]
    word: int
    shift: int
    bits: int

    @property
    def value_mask(self) -> int:
        return (1 << self.bits) - 1


@dataclass(frozen=True)
class AnatomyCodec:
    """The bit layout of a channel list; ``encode`` packs masks into words, ``decode`` expands them."""

    channels: tuple[str, ...]
    fields: tuple[AnatomyField, ...]
    n_words: int

    @classmethod
    def for_channels(cls, names: Sequence[str]) -> AnatomyCodec:
        """The layout for ``names`` (``InputSpec.anatomy_channels``, in network channel order)."""
        names = tuple(names)
        check_channel_names(names)
        if len(set(names)) != len(names):
            raise ValueError(f"anatomy channels listed twice: {names}")
        lobes = tuple(n for n in names if n in LOBE_CHANNELS)
        groups: list[tuple[str, tuple[str, ...]]] = []
        for name in names:
            if name in COORD_CHANNELS:
                groups.append(("level", (name,)))
            elif name in lobes and len(lobes) > 1:
                if name == lobes[0]:  # the lobe field takes the place of its first channel
                    groups.append(("label", lobes))
            else:
                groups.append(("mask", (name,)))
        used: list[int] = []  # bits used per word
        fields = []
        for kind, chans in groups:
            bits = WORD_BITS if kind == "level" else max(1, len(chans).bit_length())
            word = next((w for w, u in enumerate(used) if u + bits <= WORD_BITS), None)
            if word is None:
                used.append(0)
                word = len(used) - 1
            fields.append(AnatomyField(kind, chans, word, used[word], bits))
            used[word] += bits
        return cls(channels=names, fields=tuple(fields), n_words=len(used))

    # -- serialisation ----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "channels": list(self.channels),
            "n_words": self.n_words,
            "fields": [
                {
                    "kind": f.kind,
                    "channels": list(f.channels),
                    "word": f.word,
                    "shift": f.shift,
                    "bits": f.bits,
                }
                for f in self.fields
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> AnatomyCodec:
        fields = tuple(
            AnatomyField(f["kind"], tuple(f["channels"]), int(f["word"]), int(f["shift"]), int(f["bits"]))
            for f in obj["fields"]
        )
        return cls(channels=tuple(obj["channels"]), fields=fields, n_words=int(obj["n_words"]))

    # -- encoding ---------------------------------------------------------------------------------------
    def encode(self, masks: Mapping[str, np.ndarray]) -> np.ndarray:
        """{channel: uint8 array (0/1 masks, levels for coordinates)} -> (n_words, *shape) uint8 words.
        Raises ValueError when a label field's channels overlap (they could not be told apart)."""
        missing = [n for n in self.channels if n not in masks]
        if missing:
            raise KeyError(f"anatomy channel(s) {missing} required by the input spec are missing")
        shape = np.asarray(masks[self.channels[0]]).shape
        words = np.zeros((self.n_words, *shape), np.uint8)
        for f in self.fields:
            target = words[f.word]
            if f.kind == "level":
                target[...] = np.asarray(masks[f.channels[0]], np.uint8)
                continue
            if f.kind == "mask":
                target |= (np.asarray(masks[f.channels[0]]) > 0).astype(np.uint8) << f.shift
                continue
            count = np.zeros(shape, np.uint8)
            for k, name in enumerate(f.channels):
                m = np.asarray(masks[name]) > 0
                count += m
                target |= (m.astype(np.uint8) * np.uint8(k + 1)) << f.shift
            if (count > 1).any():
                raise ValueError(f"anatomy channels {f.channels} overlap; they cannot share a label field")
        return words

    # -- decoding ---------------------------------------------------------------------------------------
    def decode_levels(self, words: np.ndarray) -> dict[str, np.ndarray]:
        """(n_words, ...) words -> {channel: uint8 values}, the stored information itself (0/1, levels)."""
        out = {}
        for f in self.fields:
            w = words[f.word]
            if f.kind == "level":
                out[f.channels[0]] = np.asarray(w, np.uint8)
                continue
            value = (w >> f.shift) & np.uint8(f.value_mask)
            if f.kind == "mask":
                out[f.channels[0]] = value.astype(np.uint8)
            else:
                for k, name in enumerate(f.channels):
                    out[name] = (value == k + 1).astype(np.uint8)
        return out

    def decode(self, words: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n_words, *shape) words -> (C, *shape) float32 network channels in channel order (masks 0/1,
        coordinate levels times ``channel_scale``, as ``rexground.infer.preprocess.prepare`` builds them)."""
        shape = words.shape[1:]
        if out is None:
            out = np.empty((len(self.channels), *shape), np.float32)
        index = {name: c for c, name in enumerate(self.channels)}
        for f in self.fields:
            w = words[f.word]
            if f.kind == "level":
                name = f.channels[0]
                out[index[name]] = _level_table(channel_scale(name))[w]
                continue
            value = (w >> f.shift) & np.uint8(f.value_mask)
            if f.kind == "mask":
                out[index[f.channels[0]]] = value
            else:
                for k, name in enumerate(f.channels):
                    np.equal(value, k + 1, out=out[index[name]], casting="unsafe")
        return out


def _level_table(scale: float) -> np.ndarray:
    """float32 value of each uint8 level: the same float32 product as inference's ``image[c] *= scale``."""
    table = np.arange(256, dtype=np.float32)
    table *= scale
    return table


@dataclass(frozen=True)
class EncodedAnatomy:
    """Anatomy words on a CT's canonical grid, ready to be cropped and resampled like one channel."""

    words: np.ndarray  # (n_words, z, y, x) uint8
    codec: AnatomyCodec


class _WorkingGridView:
    """An ``Anatomy`` whose ``to_ct_grid`` is the identity: ``masks_from_anatomy`` on it yields the masks on
    the anatomy's working grid (a few times fewer voxels than the CT's), where encoding is cheapest."""

    def __init__(self, anat):
        self._anat = anat

    def __getattr__(self, name):
        return getattr(self._anat, name)

    @staticmethod
    def to_ct_grid(array: np.ndarray) -> np.ndarray:
        return array


def encode_anatomy(anat, names: Sequence[str]) -> EncodedAnatomy:
    """The channels ``names`` of a computed ``rexground.anatomy.Anatomy``, encoded on its working grid and
    moved to the CT grid word by word (one nearest-neighbour move per word instead of one per channel)."""
    codec = AnatomyCodec.for_channels(names)
    working = masks_from_anatomy(_WorkingGridView(anat), codec.channels)
    words_working = codec.encode(working)
    del working
    words = np.stack([anat.to_ct_grid(w) for w in words_working])
    return EncodedAnatomy(words=words, codec=codec)
