"""The grounding network's interface (shared with the ONNX export) and its configuration files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rexground.errors import InputFileError  # noqa: E402
from rexground.infer.channels import SIDE_AND_LOBE_CHANNELS  # noqa: E402
from rexground.train.config import NetConfig, TrainConfig, load_config  # noqa: E402
from rexground.train.network import (  # noqa: E402
    DecoderGraph,
    EncoderGraph,
    GroundingNet,
    count_parameters,
)

REPO = Path(__file__).resolve().parents[1]
QDIM = 24  # explicit here so the network tests do not depend on the text package's feature width


def _net(**kw) -> GroundingNet:
    torch.manual_seed(0)
    return GroundingNet(NetConfig.tiny(query_dim=QDIM, **kw))


def _inputs(b=2, p=1, size=(16, 32, 32), cin=1):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, cin, *size, generator=g)
    t = torch.nn.functional.normalize(torch.randn(b * p, 384, generator=g), dim=1)
    q = torch.rand(b * p, QDIM, generator=g)
    return x, t, q


def test_decode_of_encoded_features_equals_forward():
    net = _net().eval()
    x, t, q = _inputs()
    with torch.no_grad():
        feats = net.encode_image(x)
        # full-resolution mask embeddings + the shared decoder features of levels cond_level..bottleneck
        assert isinstance(feats, tuple) and len(feats) == 1 + len(net.config.features) - net.config.cond_level
        assert feats[0].shape == (2, net.config.embed_dim, 16, 32, 32)
        out = net.decode(*feats, t, q)
        assert out.shape == (2, 1, 16, 32, 32)
        assert torch.equal(out, net(x, t, q))


def test_deep_supervision_outputs_only_when_asked_and_at_coarser_scales():
    net = _net().train()
    x, t, q = _inputs(p=3)
    outs = net(x, t, q, prompts_per_image=3, deep_supervision=True)
    assert [o.shape for o in outs] == [(6, 1, 16, 32, 32), (6, 1, 4, 8, 8), (6, 1, 2, 4, 4)]
    plain = net(x, t, q, prompts_per_image=3)
    assert isinstance(plain, torch.Tensor) and plain.shape == (6, 1, 16, 32, 32)
    feats = net.encode_image(x)
    assert isinstance(net.decode(*feats, t[:2], q[:2]), torch.Tensor)


def test_prompts_of_one_image_share_the_encoder_pass():
    net = _net().eval()
    x, t, q = _inputs(b=1, p=2)
    with torch.no_grad():
        both = net(x, t, q, prompts_per_image=2)
        first = net(x, t[:1], q[:1])
        second = net(x, t[1:], q[1:])
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=1e-5, atol=1e-5)
    assert (first - second).abs().max() > 1e-4  # the text changes the answer


def test_anatomy_prior_channels_are_inputs():
    net = _net(in_channels=3).eval()
    x, t, q = _inputs(cin=3)
    with torch.no_grad():
        assert net(x, t, q).shape == (2, 1, 16, 32, 32)


def test_encoder_and_decoder_trace_with_a_fixed_patch_shape():
    net = _net().eval()
    x, t, q = _inputs(b=1)
    with torch.no_grad():
        # torch.export refuses data-dependent Python control flow, which ONNX export cannot capture either.
        enc = torch.export.export(EncoderGraph(net), (x,)).module()
        feats = enc(x)
        dec = torch.export.export(DecoderGraph(net), (*feats, t, q)).module()
        torch.testing.assert_close(dec(*feats, t, q), net(x, t, q))


def test_each_further_finding_costs_a_small_fraction_of_the_encoder():
    # The speed target (3 findings <= 1.6x one) needs the per-finding part to be cheap: count its weights'
    # multiply-adds per tile through the FLOP counter.
    from torch.utils.flop_counter import FlopCounterMode

    net = _net().eval()
    x, t, q = _inputs(b=1, size=(32, 48, 48))
    with torch.no_grad():
        with FlopCounterMode(display=False) as enc_count:
            feats = net.encode_image(x)
        with FlopCounterMode(display=False) as dec_count:
            net.decode(*feats, t, q)
    assert dec_count.get_total_flops() < 0.1 * enc_count.get_total_flops()


def test_real_size_is_between_20_and_60_million_parameters():
    n = count_parameters(GroundingNet(NetConfig.real(query_dim=QDIM)))
    assert 20e6 <= n <= 60e6, n


def test_configs_in_the_repo_load(tmp_path):
    pytest.importorskip("rexground.text.features")  # the configs take the query width from the text package
    for name in ("tiny.toml", "real.toml"):
        cfg = load_config(REPO / "configs" / name)
        assert isinstance(cfg, TrainConfig)
    real = load_config(REPO / "configs" / "real.toml")
    assert real.input.text_encoder != "hashing-test"  # the test-only embedder never trains a real model
    # the real model reads lobes through the anatomy gate, on channels the anatomy module provides
    assert real.net.anatomy_gate_maps > 0 and real.input.anatomy_channels == SIDE_AND_LOBE_CHANNELS
    assert 20e6 <= count_parameters(GroundingNet(real.net)) <= 60e6


def test_config_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"net": {"preset": "tiny", "query_dim": QDIM, "featurez": [1, 2]}}))
    with pytest.raises(InputFileError, match=r"bad\.json.*featurez"):
        load_config(bad)
    bad.write_text(
        json.dumps({"net": {"preset": "tiny", "query_dim": QDIM}, "input": {"patch_size_zyx": [30, 32, 32]}})
    )
    with pytest.raises(InputFileError, match="divisible"):
        load_config(bad)


def test_the_sliding_window_step_has_one_name_and_old_configs_still_read(tmp_path):
    net = {"preset": "tiny", "query_dim": QDIM}
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"net": net, "tile_step": 0.75}))
    assert load_config(cfg).tile_step == 0.75
    cfg.write_text(json.dumps({"net": net, "val_overlap": 0.25}))  # a config or checkpoint of before
    loaded = load_config(cfg)
    assert loaded.tile_step == 0.75 and "val_overlap" not in loaded.model_dump()
    cfg.write_text(json.dumps({"net": net, "val_overlap": 0.25, "tile_step": 0.5}))
    with pytest.raises(InputFileError, match="tile_step only"):
        load_config(cfg)
    cfg.write_text(json.dumps({"net": net, "tile_step": 0.0}))
    with pytest.raises(InputFileError, match="tile_step"):
        load_config(cfg)


def test_every_parameter_gets_a_gradient_in_training():
    # DistributedDataParallel stalls on parameters that never receive a gradient.
    for kw in ({}, {"deep_supervision": 0}, {"deep_supervision": 1}):
        net = _net(**kw).train()
        x, t, q = _inputs(p=2)
        outs = net(x, t, q, prompts_per_image=2, deep_supervision=True)
        sum(o.float().mean() for o in outs).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        assert not missing, (kw, missing)


def _gated(**kw) -> GroundingNet:
    return _net(in_channels=4, anatomy_gate_maps=2, **kw)


def _anatomy_inputs(p=1):
    x, t, q = _inputs(p=p, cin=4)
    x[:, 1:] = (x[:, 1:] > 0).float()  # the anatomy channels are 0/1 masks
    return x, t, q


def test_anatomy_gate_passes_the_anatomy_channels_to_the_decoder():
    plain, gated = _net(in_channels=4).eval(), _gated().eval()
    x, _, _ = _anatomy_inputs()
    feats = gated.encode_image(x)
    assert len(feats) == len(plain.encode_image(x)) + 1
    assert torch.equal(feats[-1], x[:, 1:])


def test_anatomy_gate_map_zero_is_added_to_the_logits_voxel_for_voxel():
    # With the per-level projections at zero, map 0 enters the logits only as itself: choosing anatomy
    # channel 2 with weight 3 must raise the logits by exactly 3 inside that channel's mask and nowhere else.
    net = _gated().eval()
    with torch.no_grad():
        for stage in net.cond_stages:
            stage.prior.weight.zero_()
        net.gate.weight.zero_()
        net.gate.bias.zero_()
    x, t, q = _anatomy_inputs()
    base = net(x, t, q)
    with torch.no_grad():
        net.gate.bias[2] = 3.0  # row-major (G, A): map 0, anatomy channel 2 (input channel 3)
    lifted = net(x, t, q)
    torch.testing.assert_close(lifted - base, 3.0 * x[:, 3:4], atol=1e-4, rtol=0)


def test_anatomy_gate_lets_the_text_choose_among_anatomy_channels():
    # Two prompts that differ only in their query features get maps weighted by different channels.
    net = _gated().eval()
    x, t, q = _anatomy_inputs()
    t2, q2 = t.clone(), q.clone()
    q2[:, :4] = 1.0 - q2[:, :4]
    with torch.no_grad():
        feats = net.encode_image(x)
        cond_a = net.cond(torch.cat([t, q], 1))
        cond_b = net.cond(torch.cat([t2, q2], 1))
        maps_a, maps_b = net._gate_maps(feats[-1], cond_a), net._gate_maps(feats[-1], cond_b)
    assert maps_a.shape == (2, 2, *x.shape[2:])
    assert not torch.allclose(maps_a, maps_b)


def test_anatomy_gate_needs_anatomy_channels():
    with pytest.raises(ValueError, match="anatomy input channels"):
        NetConfig.tiny(query_dim=QDIM, anatomy_gate_maps=2)


def test_every_parameter_of_the_gated_network_gets_a_gradient():
    net = _gated().train()
    x, t, q = _anatomy_inputs(p=2)
    outs = net(x, t, q, prompts_per_image=2, deep_supervision=True)
    sum(o.float().mean() for o in outs).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
