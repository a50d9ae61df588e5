"""Engine-free thinking-budget core: profiles, the per-request state machine, adapters.

`budget.vllm_adapter` and `budget.hf_adapter` import vLLM / transformers; the rest does not.
"""

from thinkbudget.budget.profile import BUILTIN_PROFILES, ProfileError, ProfileSpec, ThinkingProfile
from thinkbudget.budget.state import Action, BudgetParams, BudgetState, Kind

__all__ = [
    "BUILTIN_PROFILES",
    "Action",
    "BudgetParams",
    "BudgetState",
    "Kind",
    "ProfileError",
    "ProfileSpec",
    "ThinkingProfile",
]
