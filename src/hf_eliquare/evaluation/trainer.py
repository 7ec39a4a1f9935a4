"""The fine-tuning ``Trainer``: transformers' own, with evaluation kept in dataset order.

Imported only by :func:`hf_eliquare.evaluation.run_finetune` (not at ``import hf_eliquare.cli`` time), so
the commands start without loading the Trainer.
"""

from __future__ import annotations

from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_utils import has_length


class InOrderEvalTrainer(Trainer):
    """``Trainer`` whose evaluation and prediction batches follow the dataset order.

    With ``--train_sampling_strategy group_by_length`` transformers 5 also length-groups the *evaluation*
    batches (a seeded shuffle of mega-batches sorted by length). The fine-tuning metrics map predictions
    back to the split's examples by position — words through ``example_id`` / ``word_index``
    (:func:`~hf_eliquare.evaluation.features.merge_window_predictions`), labels of classification examples
    by index — so a reordered evaluation would score every prediction against another example. Training
    keeps the requested sampler (length grouping saves most of the padding); evaluation is sequential on one
    process and sharded in order by accelerate on several, as without length grouping.
    """

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None
