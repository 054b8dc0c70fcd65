from typing import Any, Dict, List

import numpy as np

KINDS: Dict[str, int]

class NativeUpdater:
    @property
    def fusable(self) -> bool: ...
    step: int
    def capsule(self) -> Any: ...

class OptimUpdater(NativeUpdater):
    def __init__(self, kind: str, dtype: Any, params: List[np.ndarray], states: List[Any],
                 hyper: Dict[str, Any]) -> None: ...

class SGDUpdater(NativeUpdater):
    def __init__(self, dtype: Any) -> None: ...

def apply_update(updater: Any, params: List[np.ndarray], grads: List[np.ndarray],
                 learning_rate: float) -> None: ...
