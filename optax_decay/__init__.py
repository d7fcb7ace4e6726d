"""optax_decay: exact, composable L2 regularization and decoupled weight decay for Optax."""

from optax_decay._alias import adam_l2 as adam_l2
from optax_decay._alias import adams as adams
from optax_decay._alias import adamw as adamw
from optax_decay._alias import adamwr as adamwr
from optax_decay._alias import sgd_l2 as sgd_l2
from optax_decay._alias import sgdw as sgdw
from optax_decay._alias import sgdwr as sgdwr
from optax_decay._coupling import COUPLINGS as COUPLINGS
from optax_decay._coupling import (
  scale_by_learning_rate_and_decay as scale_by_learning_rate_and_decay,
)
from optax_decay._decay_mask import EMBEDDING_WORDS as EMBEDDING_WORDS
from optax_decay._decay_mask import NO_DECAY_WORDS as NO_DECAY_WORDS
from optax_decay._decay_mask import decay_mask as decay_mask
from optax_decay._decays import DecayToAnchorState as DecayToAnchorState
from optax_decay._decays import add_l1_to_grads as add_l1_to_grads
from optax_decay._decays import add_l2_to_grads as add_l2_to_grads
from optax_decay._decays import decay_to_anchor as decay_to_anchor
from optax_decay._decays import decoupled_decay as decoupled_decay
from optax_decay._decays import decoupled_decay_groups as decoupled_decay_groups
from optax_decay._masks import Mask as Mask
from optax_decay._precision import CompensatedSummationState as CompensatedSummationState
from optax_decay._precision import compensated_summation as compensated_summation
from optax_decay._proximal import proximal_l1 as proximal_l1
from optax_decay._rates import DecayScheduleState as DecayScheduleState
from optax_decay._schedules import (
  cosine_warm_restarts_multiplier as cosine_warm_restarts_multiplier,
)
from optax_decay._schedules import normalized_weight_decay as normalized_weight_decay
from optax_decay._schedules import (
  restart_normalized_weight_decay as restart_normalized_weight_decay,
)
from optax_decay._schedules import timescale_from_weight_decay as timescale_from_weight_decay
from optax_decay._schedules import weight_decay_from_timescale as weight_decay_from_timescale
from optax_decay._stable import StableDecoupledDecayState as StableDecoupledDecayState
from optax_decay._stable import stable_decoupled_decay as stable_decoupled_decay
from optax_decay._wrappers import inject_hyperparams as inject_hyperparams
from optax_decay._wrappers import with_decoupled_decay as with_decoupled_decay

__version__ = "0.1.0"

__all__ = [
  "COUPLINGS",
  "CompensatedSummationState",
  "DecayScheduleState",
  "DecayToAnchorState",
  "EMBEDDING_WORDS",
  "Mask",
  "NO_DECAY_WORDS",
  "StableDecoupledDecayState",
  "adam_l2",
  "adams",
  "adamw",
  "adamwr",
  "add_l1_to_grads",
  "add_l2_to_grads",
  "compensated_summation",
  "cosine_warm_restarts_multiplier",
  "decay_mask",
  "decay_to_anchor",
  "decoupled_decay",
  "decoupled_decay_groups",
  "inject_hyperparams",
  "normalized_weight_decay",
  "proximal_l1",
  "restart_normalized_weight_decay",
  "scale_by_learning_rate_and_decay",
  "sgd_l2",
  "sgdw",
  "sgdwr",
  "stable_decoupled_decay",
  "timescale_from_weight_decay",
  "weight_decay_from_timescale",
  "with_decoupled_decay",
]
