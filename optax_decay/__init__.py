"""optax_decay: exact, composable L2 regularization and decoupled weight decay for Optax."""

from optax_decay._add_scaled import DecayScheduleState as DecayScheduleState
from optax_decay._alias import adam_l2 as adam_l2
from optax_decay._alias import adamw as adamw
from optax_decay._alias import sgd_l2 as sgd_l2
from optax_decay._alias import sgdw as sgdw
from optax_decay._anchor import DecayToAnchorState as DecayToAnchorState
from optax_decay._anchor import decay_to_anchor as decay_to_anchor
from optax_decay._compensated import CompensatedSummationState as CompensatedSummationState
from optax_decay._compensated import compensated_summation as compensated_summation
from optax_decay._coupling import COUPLINGS as COUPLINGS
from optax_decay._coupling import (
  scale_by_learning_rate_and_decay as scale_by_learning_rate_and_decay,
)
from optax_decay._decoupled import decoupled_decay as decoupled_decay
from optax_decay._inject import inject_hyperparams as inject_hyperparams
from optax_decay._l1 import add_l1_to_grads as add_l1_to_grads
from optax_decay._l2 import add_l2_to_grads as add_l2_to_grads
from optax_decay._proximal import proximal_l1 as proximal_l1

__version__ = "0.1.0"

__all__ = [
  "COUPLINGS",
  "CompensatedSummationState",
  "DecayScheduleState",
  "DecayToAnchorState",
  "adam_l2",
  "adamw",
  "add_l1_to_grads",
  "add_l2_to_grads",
  "compensated_summation",
  "decay_to_anchor",
  "decoupled_decay",
  "inject_hyperparams",
  "proximal_l1",
  "scale_by_learning_rate_and_decay",
  "sgd_l2",
  "sgdw",
]
