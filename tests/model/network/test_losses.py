"""Matcher, criterion, denoising groups and post-processing on small hand-made inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.network.boxes import box_iou, cxcywh_to_xyxy, generalized_box_iou, inverse_sigmoid, xyxy_to_cxcywh
from model.network.criterion import RTDETRCriterion
from model.network.denoising import build_denoising_queries
from model.network.matcher import HungarianMatcher
from model.network.postprocess import MSCOCO_LABEL_TO_CATEGORY, RTDETRPostProcessor
from model.network.rtdetr import build_criterion

GT_BOXES = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])
GT_LABELS = torch.tensor([1, 2])


def _outputs_with_gt_at(
    queries: list[int], num_queries: int = 5, num_classes: int = 3
) -> dict[str, torch.Tensor]:
    logits = torch.full((1, num_queries, num_classes), -6.0)
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1]]).repeat(1, num_queries, 1)
    for q, box, label in zip(queries, GT_BOXES, GT_LABELS):
        boxes[0, q] = box
        logits[0, q, label] = 6.0
    return {"pred_logits": logits, "pred_boxes": boxes}


def test_box_conversions_and_overlaps() -> None:
    xyxy = cxcywh_to_xyxy(GT_BOXES)
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), GT_BOXES)
    iou, _ = box_iou(xyxy, xyxy)
    torch.testing.assert_close(torch.diag(iou), torch.ones(2))
    far = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.9, 0.9, 1.0, 1.0]])
    assert generalized_box_iou(far[:1], far[1:]).item() < 0
    torch.testing.assert_close(
        torch.sigmoid(inverse_sigmoid(torch.tensor([0.25, 0.5]))), torch.tensor([0.25, 0.5])
    )


def test_matcher_finds_the_queries_that_hold_the_ground_truth() -> None:
    outputs = _outputs_with_gt_at([3, 1])
    rows, cols = HungarianMatcher()(outputs, [{"labels": GT_LABELS, "boxes": GT_BOXES}])["indices"][0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 3, 1: 1}


def test_criterion_on_perfect_boxes_has_zero_box_loss_and_official_names() -> None:
    criterion = build_criterion({"dataset": {"num_classes": 3}})
    targets = [{"labels": GT_LABELS, "boxes": GT_BOXES}]
    outputs = _outputs_with_gt_at([3, 1])
    outputs["aux_outputs"] = [_outputs_with_gt_at([0, 4])]
    outputs["enc_aux_outputs"] = [_outputs_with_gt_at([2, 0])]
    losses = criterion(outputs, targets)
    assert set(losses) == {f"loss_{k}{s}" for k in ("vfl", "bbox", "giou") for s in ("", "_aux_0", "_enc_0")}
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    worse = _outputs_with_gt_at([3, 1])
    worse["pred_boxes"][0, 3] += 0.05
    assert criterion(worse, targets)["loss_bbox"] > 0


def test_denoising_groups_attention_mask_and_positive_indices() -> None:
    embed = torch.nn.Embedding(4, 8, padding_idx=3)
    targets = [{"labels": GT_LABELS, "boxes": GT_BOXES}, {"labels": torch.tensor([0]), "boxes": GT_BOXES[:1]}]
    dn = build_denoising_queries(targets, num_classes=3, num_queries=5, class_embed=embed, num_denoising=10)
    # max 2 gt -> 5 groups of (2 positive + 2 negative) queries
    assert dn.meta["dn_num_group"] == 5 and dn.meta["dn_num_split"] == [20, 5]
    assert dn.content.shape == (2, 20, 8) and dn.boxes_unact.shape == (2, 20, 4)
    assert [len(i) for i in dn.meta["dn_positive_idx"]] == [10, 5]
    mask = dn.attn_mask
    assert mask.shape == (25, 25)
    assert mask[20:, :20].all() and not mask[20:, 20:].any()  # matching queries never see dn queries
    assert not mask[:4, :4].any() and mask[:4, 4:20].all()  # a group sees only itself
    assert not mask[:20, 20:].any()  # dn queries see the matching queries


def test_denoising_without_ground_truth_uses_one_masked_dummy_group() -> None:
    embed = torch.nn.Embedding(4, 8, padding_idx=3)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    dn = build_denoising_queries([empty, empty], num_classes=3, num_queries=5, class_embed=embed)
    assert dn.meta["dn_num_split"] == [2, 5]
    assert all(len(i) == 0 for i in dn.meta["dn_positive_idx"])
    assert torch.isfinite(dn.boxes_unact).all()
    assert RTDETRCriterion.dn_indices(dn.meta, [empty, empty])[0][0].numel() == 0


def test_postprocessor_picks_top_query_class_pairs_and_scales_boxes() -> None:
    logits = torch.full((1, 3, 2), -9.0)
    logits[0, 2, 1] = 4.0
    logits[0, 0, 0] = 3.0
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.75, 0.5, 0.5]]])
    post = RTDETRPostProcessor(num_classes=2, num_top_queries=2)
    result = post({"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([[200, 100]]))[0]  # [w, h]
    assert result["labels"].tolist() == [1, 0]
    torch.testing.assert_close(
        result["boxes"], torch.tensor([[0.0, 50.0, 100.0, 100.0], [80.0, 30.0, 120.0, 70.0]])
    )
    labels, _, scores = post.deploy()(
        {"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([[200, 100]])
    )
    assert labels.shape == (1, 2) and scores[0, 0].item() == pytest.approx(1 / (1 + math.exp(-4.0)))


def test_coco_category_table() -> None:
    assert len(MSCOCO_LABEL_TO_CATEGORY) == 80
    assert MSCOCO_LABEL_TO_CATEGORY[0] == 1 and MSCOCO_LABEL_TO_CATEGORY[-1] == 90
    assert MSCOCO_LABEL_TO_CATEGORY[32] == 37


def _average_on_rank(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        n = 3 if rank == 0 else 5
        targets = [{"labels": torch.zeros(n, dtype=torch.int64), "boxes": torch.rand(n, 4)}]
        results[rank] = RTDETRCriterion.average_num_boxes(targets, torch.device("cpu"))
    finally:
        dist.destroy_process_group()


def test_num_boxes_is_averaged_over_ranks(tmp_path: Path) -> None:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_average_on_rank, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
        assert dict(results) == {0: 4.0, 1: 4.0}


def _class_logit_gradient(class_loss: str, logit: float, box: list[float], matched: bool) -> float:
    """d(classification loss)/d(logit) at class 1 of query 0, the query matched to GT box 0 or not."""
    criterion = build_criterion({"dataset": {"num_classes": 3}, "model": {"class_loss": class_loss}})
    logits = torch.full((1, 2, 3), -6.0)
    logits[0, 0, 1] = logit
    logits.requires_grad_(True)
    outputs = {"pred_logits": logits, "pred_boxes": torch.tensor([[box, [0.5, 0.5, 0.1, 0.1]]])}
    targets = [{"labels": GT_LABELS[:1], "boxes": GT_BOXES[:1]}]
    src = 0 if matched else 1
    indices = [(torch.tensor([src]), torch.tensor([0]))]
    loss = getattr(criterion, f"loss_{class_loss}")(outputs, targets, indices, 1.0)[f"loss_{class_loss}"]
    loss.backward()
    assert logits.grad is not None
    return float(logits.grad[0, 0, 1])


PERFECT_BOX = GT_BOXES[0].tolist()
HALF_BOX = [0.3, 0.3, 0.2, 0.1]  # IoU 0.5 with GT box 0


def test_mal_gradient_raises_a_well_boxed_match_and_lowers_an_overconfident_poor_one() -> None:
    # Descent moves a logit against its gradient: negative raises the score, positive lowers it.
    assert _class_logit_gradient("mal", -2.0, PERFECT_BOX, matched=True) < 0
    gamma = 1.5  # model.mal_gamma's default: the target of an IoU-0.5 match is 0.5 ** 1.5 = 0.354
    assert _class_logit_gradient("mal", 2.0, HALF_BOX, matched=True) > 0  # score 0.88 > 0.354
    assert _class_logit_gradient("mal", -2.0, HALF_BOX, matched=True) < 0  # score 0.12 < 0.354
    at_target = math.log(0.5**gamma / (1 - 0.5**gamma))
    assert _class_logit_gradient("mal", at_target, HALF_BOX, matched=True) == pytest.approx(0.0, abs=1e-6)
    # An unmatched query is only ever pushed down, and a confident one harder than a quiet one.
    loud = _class_logit_gradient("mal", 2.0, PERFECT_BOX, matched=False)
    quiet = _class_logit_gradient("mal", -2.0, PERFECT_BOX, matched=False)
    assert loud > quiet > 0


def test_mal_keeps_full_weight_on_a_poor_match_where_vfl_weighs_it_by_iou() -> None:
    # VFL's positive weight is the IoU (0.5 here); MAL's is 1, so a low-scored poor match learns faster.
    vfl = _class_logit_gradient("vfl", -4.0, HALF_BOX, matched=True)
    mal = _class_logit_gradient("mal", -4.0, HALF_BOX, matched=True)
    assert vfl < 0 and mal < 0
    assert abs(mal) > 1.3 * abs(vfl)
