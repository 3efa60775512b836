"""Prompt-based few- and zero-shot learning with a pretrained model's own heads (one file per concept).

* :mod:`~kexue.prompting.pattern` — cloze templates with text, mask and trainable-prompt slots at any position;
* :mod:`~kexue.prompting.verbalizer` — labels to words of any token length, scored jointly (per-length rule);
* :mod:`~kexue.prompting.pet` — PET's scoring and training batches (https://kexue.fm/archives/7764);
* :mod:`~kexue.prompting.ptuning` — P-tuning's trainable prompt rows, truly frozen model
  (https://kexue.fm/archives/8295);
* :mod:`~kexue.prompting.nsp_zeroshot` — NSP-BERT zero-shot scoring (https://kexue.fm/archives/8671).
"""

from kexue.prompting.nsp_zeroshot import NSPZeroShotClassifier, nsp_logits
from kexue.prompting.pattern import ClozePattern, EncodedPattern
from kexue.prompting.pet import PETClassifier, cloze_word_scores, mlm_logits, mlm_loss, random_token_mask
from kexue.prompting.ptuning import (REFERENCE_TEMPLATE, PromptEncoder, PTuningModel, freeze_all_but_prompt_rows,
                                     prompt_token_ids)
from kexue.prompting.verbalizer import LabelWord, Verbalizer, parse_verbalizer

__all__ = ["REFERENCE_TEMPLATE", "ClozePattern", "EncodedPattern", "LabelWord", "NSPZeroShotClassifier",
           "PETClassifier", "PTuningModel", "PromptEncoder", "Verbalizer", "cloze_word_scores",
           "freeze_all_but_prompt_rows", "mlm_logits", "mlm_loss", "nsp_logits", "parse_verbalizer",
           "prompt_token_ids", "random_token_mask"]
