"""Knowledge distillation (``rtdetr distill``): a frozen teacher RT-DETR guides a student.

How TAO's ``distill.*`` keys map onto this package (TAO's ``RtdetrDistiller`` is the reference):

- ``distill.teacher``: a full ``model.*`` section; the teacher is built with the spec's dataset
  (classes, sizes) and ``distill.pretrained_teacher_model_path`` loaded into it. Every teacher
  tensor must be in that file with its shape (else a CheckpointError: the teacher config does not
  describe the checkpoint). The teacher stays in eval mode with ``requires_grad`` off and is never
  saved; only the student is checkpointed, as ``rtdetr train`` saves it.
- ``model.load_teacher_enc_dec``: the teacher's ``encoder.*``/``decoder.*`` tensors whose names
  and shapes the student shares are copied into the student before training (TAO does the same;
  the backbones stay as built or as ``train.pretrained_model_path`` loaded them).
- ``distill.bindings[*]``: ``student_module_name`` / ``teacher_module_name`` name a module of each
  network: any ``named_modules()`` name (``backbone``, ``encoder``, ``encoder.fpn_blocks.0``,
  ``decoder.input_proj.1``...; TAO's ``model.`` prefix is accepted), or TAO's feature maps
  ``srcs`` = the encoder's output maps (the decoder's inputs; module ``encoder``) and ``dsrcs`` =
  the decoder's input projections of them (``decoder.input_proj.<i>``, ``hidden_dim`` wide). TAO
  reads ``srcs``/``dsrcs`` from extra model outputs; we take the same tensors with forward hooks.
  Names are checked against both built networks before training, with the valid names listed.
- ``criterion``: ``L1``, ``L2`` (MSE), ``KL`` (softmax over channels) or ``IOU``; TAO's rule holds:
  an ``IOU`` binding names ``srcs`` or ``dsrcs``, the same on both sides. ``IOU`` is TAO's
  query-guided feature imitation (:func:`model.distill.criteria.iou_feature_loss`): an MSE on the
  maps, masked where the teacher's object queries respond, weighted by each query's class
  probability times its IoU with the ground truth. TAO takes the queries' scores and boxes from
  the encoder's top-k selection; we take the teacher's final-layer queries with their own final
  scores and boxes (same queries, same order, the teacher's best estimate of them).
- ``weight``: multiplies that binding's loss once (TAO's L1/L2/KL path applies it twice, weight^2,
  which looks unintended), and ``model.distillation_loss_coef`` multiplies all of them.
- Shapes must match (TAO has no projection for RT-DETR either): a binding whose student and
  teacher outputs differ in shape is a ConfigError before training, found by one forward pass of
  both networks on a synthetic batch.

Every binding's weighted loss is added to the detection loss, and logged per epoch in
status.json's kpi as ``distill_<student module>`` beside ``train_detection_loss`` and
``train_loss`` (their sum, as TAO's train_loss is), through the trainer's ``extra_losses`` hook.
"""

from model.distill.bindings import CRITERIA, FEATURE_MAPS, Binding, binding_problems, parse_bindings

__all__ = ["CRITERIA", "FEATURE_MAPS", "Binding", "binding_problems", "parse_bindings"]
