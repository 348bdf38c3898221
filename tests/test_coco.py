"""COCO interoperability: reading, exporting results, and COCOeval-backed AP."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hideseek.localization.coco import (
    STAT_NAMES,
    COCOFormatError,
    box_result,
    cam_regions,
    cams_to_results,
    coco_ap,
    encode_mask,
    load_coco,
    load_results,
    save_results,
    segm_result,
)

# pycocotools' mask.decode passes copy=False to numpy 2 (its warning, not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)

DATA = Path(__file__).parent / "data" / "coco"
GT = DATA / "instances.json"
RESULTS = {"bbox": DATA / "results_bbox.json", "segm": DATA / "results_segm.json"}


def reference_stats(gt_path, results_path, iou_type):
    """COCOeval run directly on the files, as its own documentation shows."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(results_path))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.fixture(scope="module")
def ds():
    return load_coco(GT)


# --------------------------------------------------------------------------- reading


def test_reads_images_labels_boxes(ds):
    assert ds.image_ids == [1, 2, 3, 4]
    assert ds.category_ids == [1, 3]
    assert ds.label_of == {1: 0, 3: 1}
    assert ds.category_names == {1: "square", 3: "blob"}
    assert ds.multilabel() == {1: [1, 3], 2: [1], 3: [1, 3], 4: []}
    np.testing.assert_array_equal(
        ds.multilabel_targets(), [[1, 1], [1, 0], [1, 1], [0, 0]]
    )
    assert ds.image_size(1) == (40, 30)
    # polygon [4,4 .. 16,14] -> bbox [4, 4, 12, 10] -> inclusive corners
    assert ds.coco_boxes(1, 1) == [[4.0, 4.0, 12.0, 10.0]]
    assert ds.boxes(1, 1) == [(4.0, 4.0, 15.0, 13.0)]
    assert len(ds.boxes(3)) == 3
    assert len(ds.boxes(3, include_crowd=False)) == 2


def test_masks_decode_polygon_compressed_and_uncompressed_rle(ds):
    m1 = ds.masks(1)
    assert m1.shape == (2, 30, 40) and m1.dtype == np.uint8
    # compressed RLE: the disc of radius 6 drawn for the fixture
    yy, xx = np.mgrid[:30, :40]
    np.testing.assert_array_equal(
        m1[1], ((yy - 18) ** 2 + (xx - 28) ** 2 <= 36).astype(np.uint8)
    )
    # uncompressed RLE (crowd): a filled rectangle
    crowd = ds.masks(3, 3)[0]
    expected = np.zeros((36, 48), np.uint8)
    expected[5:20, 30:44] = 1
    np.testing.assert_array_equal(crowd, expected)
    # every mask matches the annotation's area and box
    for image_id in ds.image_ids:
        for ann, mask in zip(ds.annotations(image_id), ds.masks(image_id)):
            assert mask.sum() == ann["area"]
            rle = mask_utils.encode(np.asfortranarray(mask))
            np.testing.assert_allclose(mask_utils.toBbox(rle), ann["bbox"])
    assert ds.masks(4).shape == (0, 20, 20)
    assert ds.class_mask(2, 1).sum() == ds.masks(2, 1).sum()


def test_wsol_metadata_uses_largest_instance(ds):
    meta = ds.to_wsol_metadata()
    assert meta.image_ids == ["a.png", "b.png", "c.png"]  # d.png has no annotation
    # a.png: square (area 120) > disc (113); c.png: the crowd blob is skipped,
    # the triangle (cat 3) beats the small square (cat 1)
    assert meta.class_labels == {"a.png": 0, "b.png": 0, "c.png": 1}
    assert meta.image_sizes["c.png"] == (48, 36)
    assert meta.boxes["b.png"] == ds.boxes(2, 1)
    assert meta.boxes["c.png"] == ds.boxes(3, 3)
    assert meta.localization_type == "boxes"
    with pytest.raises(COCOFormatError, match="image 4 has no annotations"):
        ds.to_wsol_metadata(skip_unlabeled=False)


# --------------------------------------------------------------------------- AP


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_ap_equals_cocoeval_stats(iou_type):
    stats = reference_stats(GT, RESULTS[iou_type], iou_type)
    ours = coco_ap(GT, RESULTS[iou_type], iou_type)
    assert list(ours) == list(STAT_NAMES)
    for name, value in zip(STAT_NAMES, stats):
        if value == -1:
            assert ours[name] is None, name
        else:
            assert ours[name] == pytest.approx(100 * value, abs=1e-12), name
    # the fixture has only small objects: medium/large ranges are undefined
    assert ours["APm"] is None and ours["APl"] is None
    assert 0 < ours["AP"] < 100


def test_coco_ap_accepts_loaded_objects(ds):
    records = load_results(RESULTS["bbox"], ds)
    assert coco_ap(ds, records, "bbox") == coco_ap(GT, RESULTS["bbox"], "bbox")


def test_perfect_predictions_round_trip(ds, tmp_path):
    boxes, segms = [], []
    for image_id in ds.image_ids:
        for ann, corners, mask in zip(
            ds.annotations(image_id), ds.boxes(image_id), ds.masks(image_id)
        ):
            if ann.get("iscrowd"):
                continue  # crowd regions are ignored by COCOeval, not matched
            boxes.append(box_result(image_id, ann["category_id"], corners, 1.0))
            segms.append(segm_result(image_id, ann["category_id"], mask, 1.0))
    for record, ann in zip(
        boxes, [a for a in ds.coco.dataset["annotations"] if not a["iscrowd"]]
    ):
        assert (
            record["bbox"] == ann["bbox"]
        )  # inclusive corners -> [x, y, w, h] exactly
    for iou_type, records in (("bbox", boxes), ("segm", segms)):
        path = save_results(records, tmp_path / f"{iou_type}.json")
        json.loads(path.read_text())  # plain JSON (RLE counts are str)
        ours = coco_ap(GT, path, iou_type)
        assert ours["AP"] == pytest.approx(100.0)
        assert ours["AP50"] == pytest.approx(100.0) and ours["AR100"] == pytest.approx(
            100.0
        )
        assert ours == {
            k: (None if v == -1 else pytest.approx(100 * v))
            for k, v in zip(STAT_NAMES, reference_stats(GT, path, iou_type))
        }


def test_no_results_scores_zero(ds):
    ours = coco_ap(ds, [], "bbox")
    assert ours["AP"] == 0.0 and ours["AR100"] == 0.0 and ours["APl"] is None


def test_encode_mask_round_trip():
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [17, 23]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(decoded, mask)


# --------------------------------------------------------------------------- CAMs


def _blob_cam(h, w, boxes):
    cam = np.zeros((h, w))
    for x0, y0, x1, y1, v in boxes:
        cam[y0 : y1 + 1, x0 : x1 + 1] = v
    return cam


def test_cam_regions_and_results():
    cam = _blob_cam(30, 40, [(4, 4, 15, 13, 1.0), (25, 20, 30, 24, 0.8)])
    largest = cam_regions(cam, 0.5)
    assert len(largest) == 1 and largest[0].sum() == 12 * 10
    both = cam_regions(cam, 0.5, all_regions=True)
    assert [m.sum() for m in both] == [120, 30]
    assert cam_regions(np.zeros((5, 5)), 0.5) == []

    out = cams_to_results({1: {1: cam}}, 0.5, all_regions=True)
    assert [r["bbox"] for r in out["bbox"]] == [
        [4.0, 4.0, 12.0, 10.0],
        [25.0, 20.0, 6.0, 5.0],
    ]
    assert [r["score"] for r in out["bbox"]] == pytest.approx([1.0, 0.8])
    for box, segm in zip(out["bbox"], out["segm"]):
        rle = {
            "size": segm["segmentation"]["size"],
            "counts": segm["segmentation"]["counts"].encode(),
        }
        np.testing.assert_allclose(mask_utils.toBbox(rle), box["bbox"])

    scored = cams_to_results(
        {1: {1: cam}}, 0.5, iou_type="bbox", class_scores={1: {1: 0.5}}
    )
    assert list(scored) == ["bbox"] and scored["bbox"][0]["score"] == pytest.approx(0.5)

    # the protocol's boxes reach one pixel past the region (x + w corners)
    proto = cams_to_results({1: {1: cam}}, 0.5, iou_type="bbox", protocol_boxes=True)
    assert proto["bbox"][0]["bbox"] == [4.0, 4.0, 13.0, 11.0]
    with pytest.raises(ValueError, match="iou_type"):
        cams_to_results({1: {1: cam}}, 0.5, iou_type="keypoints")


def test_cams_from_gt_masks_score_100(ds, tmp_path):
    """CAMs equal to the GT class masks give perfect box and mask AP for single instances."""
    cams = {}
    for image_id in (1, 2):
        cams[image_id] = {
            c: ds.class_mask(image_id, c).astype(np.float64)
            for c in ds.image_labels(image_id)
        }
    out = cams_to_results(cams, 0.5, all_regions=True)
    for iou_type in ("bbox", "segm"):
        ours = coco_ap(ds, out[iou_type], iou_type)
        # image 3 has no CAMs: its objects are missed, so AP < 100 overall
        assert ours["AP"] < 100
    # on a GT file restricted to images 1 and 2 the CAMs are perfect
    sub = dict(ds.coco.dataset)
    sub["images"] = [i for i in sub["images"] if i["id"] in (1, 2)]
    sub["annotations"] = [a for a in sub["annotations"] if a["image_id"] in (1, 2)]
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(sub))
    for iou_type in ("bbox", "segm"):
        assert coco_ap(path, out[iou_type], iou_type)["AP"] == pytest.approx(100.0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", r"bad.json:1: not valid JSON"),
        ("[]", "with an object at the top level, found a list"),
        (
            '{"images": [], "categories": []}',
            r"missing top-level key\(s\) \['annotations'\]",
        ),
        (
            '{"images": [{"id": 1}], "annotations": [], "categories": []}',
            r"images\[0\] lacks key",
        ),
        (
            (
                '{"images": [{"id": 1, "width": 4, "height": 4}], "categories": [{"id": 1, "name": "a"}],'
                ' "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}'
            ),
            "unknown image id 2",
        ),
        (
            (
                '{"images": [{"id": 1, "width": 4, "height": 4}], "categories": [{"id": 1, "name": "a"}],'
                ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}]}'
            ),
            r"'bbox' must be \[x, y, w, h\]",
        ),
        (
            (
                '{"images": [{"id": 1, "width": 4, "height": 4}], "categories": [{"id": 1, "name": "a"}],'
                ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],'
                ' "segmentation": {"size": [5, 4], "counts": [20]}}]}'
            ),
            "RLE size",
        ),
        (
            (
                '{"images": [{"id": 1, "width": 4, "height": 4}], "categories": [{"id": 1, "name": "a"}],'
                ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],'
                ' "segmentation": [[0, 0, 1]]}]}'
            ),
            "polygon",
        ),
    ],
)
def test_malformed_instances_name_the_file(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(COCOFormatError, match=match) as info:
        load_coco(path)
    assert str(path) in str(info.value)


def test_missing_files_and_bad_results(tmp_path, ds):
    with pytest.raises(COCOFormatError, match="file not found"):
        load_coco(tmp_path / "nope.json")
    cases = [
        ('{"a": 1}', "with a list at the top level, found an object"),
        (
            '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]',
            r"lacks key\(s\) \['score'\]",
        ),
        (
            '[{"image_id": 1, "category_id": 1, "score": 0.5}]',
            "needs 'bbox' or 'segmentation'",
        ),
        (
            '[{"image_id": 9, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]}]',
            "image id 9 is not in",
        ),
        (
            '[{"image_id": 1, "category_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]}]',
            "category id 2 is not in",
        ),
    ]
    for k, (text, match) in enumerate(cases):
        path = tmp_path / f"res{k}.json"
        path.write_text(text)
        with pytest.raises(COCOFormatError, match=match) as info:
            coco_ap(ds, path, "bbox")
        assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="iou_type"):
        coco_ap(ds, [], "keypoints")


def test_segm_ap_needs_gt_segmentation(tmp_path):
    path = tmp_path / "boxes_only.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 8, "height": 8}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}
                ],
            }
        )
    )
    gt = load_coco(path)
    assert gt.coco.anns[1]["area"] == 9.0  # filled from the box
    rec = [box_result(1, 1, (1, 1, 3, 3), 0.9)]
    assert coco_ap(gt, rec, "bbox")["AP"] == pytest.approx(100.0)
    with pytest.raises(COCOFormatError, match="needs 'segmentation'"):
        coco_ap(gt, rec, "segm")
    with pytest.raises(COCOFormatError, match="has no 'segmentation'"):
        gt.masks(1)


def test_evaluation_leaves_the_dataset_untouched(ds):
    before = json.dumps(ds.coco.dataset, sort_keys=True)
    coco_ap(ds, RESULTS["segm"], "segm")
    coco_ap(ds, RESULTS["bbox"], "bbox")
    assert json.dumps(ds.coco.dataset, sort_keys=True) == before
