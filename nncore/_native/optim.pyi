from typing import Any, Dict, List

import numpy as np

KINDS: Dict[str, int]

class OptimUpdater:
    @property
    def fusable(self) -> bool: ...
    step: int
    def __init__(self, kind: str, dtype: Any, params: List[np.ndarray], states: List[Any],
                 hyper: Dict[str, Any]) -> None: ...
    def capsule(self) -> Any: ...

class SGDUpdater:
    @property
    def fusable(self) -> bool: ...
    step: int
    def __init__(self, dtype: Any) -> None: ...
    def capsule(self) -> Any: ...
